package orders_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// newInstance returns an instance of the order workflow holding in as its
// input, with empty maps as the store decodes them.
func newInstance(t *testing.T, id string, in orders.Input) *statemachine.Instance {
	t.Helper()
	b, err := json.Marshal(in)
	require.NoError(t, err)
	return &statemachine.Instance{
		ID: id, Workflow: "order", Version: 1, State: "pending", Status: statemachine.StatusRunning,
		Signals: map[string]bool{}, Attempts: map[string]int{}, Declined: map[string]bool{},
		Results: map[string]string{}, Input: b,
	}
}

// testInput is a valid order input.
func testInput() orders.Input {
	return orders.Input{
		CustomerID: "cust-42", Currency: "USD", AmountCents: 4998,
		Items:    []orders.Item{{SKU: "SKU-ABC", Qty: 2, UnitPriceCents: 2499}},
		Metadata: map[string]string{"channel": "web"},
	}
}

func TestNewResourceMapsEveryField(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.UTC)
	updated := created.Add(333333 * time.Microsecond)
	in := newInstance(t, "order-12345", testInput())
	in.Version, in.State, in.Status = 2, "charging", statemachine.StatusRunning
	in.Created, in.Updated = created, updated
	in.Results = map[string]string{
		orders.ResultReservationID: "res-1", orders.ResultTransactionID: "txn-1",
		orders.ResultTrackingNumber: "trk-1", orders.ResultRefundID: "ref-1", "other": "x",
	}
	in.Attempts = map[string]int{statemachine.StepCharge: 2, statemachine.StepReserve: 1, statemachine.StepShip: 0}
	in.Signals = map[string]bool{statemachine.SignalCancel: true}
	in.LastError = "payment provider: 503"

	require.Equal(t, orders.Resource{
		OrderID: "order-12345", CustomerID: "cust-42", Currency: "USD", AmountCents: 4998,
		Items:    []orders.Item{{SKU: "SKU-ABC", Qty: 2, UnitPriceCents: 2499}},
		Metadata: map[string]string{"channel": "web"},
		Status:   "running", State: "charging", WorkflowVersion: 2, Priority: "normal",
		CreatedAt: created, UpdatedAt: updated,
		ReservationID: "res-1", TransactionID: "txn-1", TrackingNumber: "trk-1", RefundID: "ref-1",
		Attempts:        map[string]int{"charge": 2, "reserve": 1},
		LastError:       "payment provider: 503",
		CancelRequested: true,
	}, orders.NewResource(in))
}

// The JSON of an order that has no step results, no attempts and no error,
// and of zero times.
const (
	noProgress = `"reservation_id":"","transaction_id":"","tracking_number":"","refund_id":"","attempts":{},"last_error":""}`
	zeroTimes  = `"created_at":"0001-01-01T00:00:00Z","updated_at":"0001-01-01T00:00:00Z",`
)

func TestNewResourceJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(in *statemachine.Instance)
		want   string
	}{
		{
			name: "fresh",
			change: func(in *statemachine.Instance) {
				in.Created = time.Date(2026, 11, 26, 10, 0, 0, 123456000, time.UTC)
				in.Updated = in.Created
			},
			want: `{"order_id":"o1","customer_id":"cust-42","currency":"USD","amount_cents":4998,
				"items":[{"sku":"SKU-ABC","qty":2,"unit_price_cents":2499}],"metadata":{"channel":"web"},
				"status":"running","state":"pending","workflow_version":1,"priority":"normal",
				"created_at":"2026-11-26T10:00:00.123456Z","updated_at":"2026-11-26T10:00:00.123456Z",` + noProgress,
		},
		{
			name: "no input, zero attempts, cancel consumed",
			change: func(in *statemachine.Instance) {
				in.Input = nil
				in.Attempts = map[string]int{"reserve": 0}
				in.Signals = map[string]bool{statemachine.SignalCancel: false}
				in.Status, in.State = statemachine.StatusCancelled, "cancelled"
			},
			want: `{"order_id":"o1","customer_id":"","currency":"","amount_cents":0,"items":[],
				"status":"cancelled","state":"cancelled","workflow_version":1,"priority":"normal",` + zeroTimes + noProgress,
		},
		{
			name: "input without items",
			change: func(in *statemachine.Instance) {
				in.Input = []byte(`{"customer_id":"c","currency":"EUR","amount_cents":0,"items":null}`)
				in.Attempts = nil
			},
			want: `{"order_id":"o1","customer_id":"c","currency":"EUR","amount_cents":0,"items":[],
				"status":"running","state":"pending","workflow_version":1,"priority":"normal",` + zeroTimes + noProgress,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newInstance(t, "o1", testInput())
			tc.change(in)
			b, err := json.Marshal(orders.NewResource(in))
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(b))
		})
	}
}
