package api_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
)

func TestGetOrder(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		created := b.create(orderBody(withID("a.b:c_d-1")))
		require.Equal(t, created.OrderID, b.order("a.b:c_d-1").OrderID)

		p := requireProblem(t, b.get("/v1/orders/no-such-order"), http.StatusNotFound)
		require.Empty(t, p.Errors)
		requireProblem(t, b.get("/v1/orders/no-such-order/history"), http.StatusNotFound)

		for _, id := range []string{strings.Repeat("x", 129), "a!b", "a%20b", "caf%C3%A9"} {
			requireValidation(t, b.get("/v1/orders/"+id), "order_id")
			requireValidation(t, b.get("/v1/orders/"+id+"/history"), "order_id")
		}
	})
}

// Reading is a query: it changes neither the order nor its history.
func TestGetOrderDoesNotWrite(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	b.create(orderBody(withID("read-only")))
	before, hist := b.order("read-only"), b.get("/v1/orders/read-only/history").Body
	for range 3 {
		b.get("/v1/orders/read-only")
		b.get("/v1/orders/read-only/history")
		b.list("")
	}
	require.Equal(t, before, b.order("read-only"))
	require.Equal(t, string(hist), string(b.get("/v1/orders/read-only/history").Body))
}

// historyBody is the body of GET /v1/orders/{id}/history.
type historyBody struct {
	OrderID string               `json:"order_id"`
	Events  []statemachine.Event `json:"events"`
}

func TestGetHistory(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.create(orderBody(withID("hist-1")))
		b.drive("hist-1", "start", "reserved")
		require.Equal(t, http.StatusAccepted, b.cancel("hist-1").Code)

		h := decode[historyBody](t, b.get("/v1/orders/hist-1/history"), http.StatusOK)
		require.Equal(t, "hist-1", h.OrderID)
		require.GreaterOrEqual(t, len(h.Events), 4)
		require.Equal(t, statemachine.EventCreated, h.Events[0].Type)
		require.Equal(t, statemachine.OrderPending, h.Events[0].To)
		var last time.Time
		for i, ev := range h.Events {
			require.Equal(t, i+1, ev.Seq, "seq starts at 1 and has no gaps")
			require.False(t, ev.At.IsZero())
			require.False(t, ev.At.Before(last), "oldest first")
			last = ev.At
		}
		require.Equal(t, statemachine.OrderReserving, h.Events[1].To)
		require.Equal(t, statemachine.OrderCharging, h.Events[2].To)
		require.Equal(t, statemachine.EventSignal, h.Events[len(h.Events)-1].Type)
	})
}

func TestListOrders(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		require.Empty(t, b.list("").Orders)
		require.NotNil(t, b.list("").Orders, `an empty list is "orders": []`)

		created := b.createN("list", 53)
		newestFirst := reversed(created)

		page := b.list("")
		require.Equal(t, newestFirst[:50], ids(page.Orders), "newest first, 50 by default")
		require.NotEmpty(t, page.NextCursor)

		all := b.list("limit=500")
		require.Equal(t, newestFirst, ids(all.Orders))
		require.Empty(t, all.NextCursor)

		// Pages of 7 return every order once, newest first.
		var paged []string
		cursor := ""
		for range 20 {
			p := b.list("limit=7&cursor=" + url.QueryEscape(cursor))
			require.LessOrEqual(t, len(p.Orders), 7)
			paged = append(paged, ids(p.Orders)...)
			if cursor = p.NextCursor; cursor == "" {
				break
			}
		}
		require.Empty(t, cursor, "the pages end")
		require.Equal(t, newestFirst, paged)
	})
}

func TestListOrdersFilters(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		created := b.createN("filter", 4)
		require.Equal(t, http.StatusAccepted, b.cancel(created[1]).Code)
		b.drive(created[2], "start", "reserved")

		require.Equal(t, []string{created[1]}, b.listIDs("status=cancelled"))
		require.Equal(t, []string{created[3], created[2], created[0]}, b.listIDs("status=running"))
		require.Empty(t, b.listIDs("status=completed"))
		require.Equal(t, []string{created[3], created[0]}, b.listIDs("state=pending"))
		require.Equal(t, []string{created[2]}, b.listIDs("state=charging"))
		require.Equal(t, []string{created[2]}, b.listIDs("status=running&state=charging"))
		require.Empty(t, b.listIDs("status=cancelled&state=pending"))

		// Filtered pages.
		p := b.list("status=running&limit=2")
		require.Equal(t, []string{created[3], created[2]}, ids(p.Orders))
		require.Equal(t, []string{created[0]}, b.listIDs("status=running&limit=2&cursor="+url.QueryEscape(p.NextCursor)))
	})
}

func TestListOrdersBadQuery(t *testing.T) {
	t.Parallel()
	b := setupMini(t, api.Deps{})
	b.createN("bad-query", 2)
	for query, field := range map[string]string{
		"limit=0":        "limit",
		"limit=501":      "limit",
		"limit=-1":       "limit",
		"limit=x":        "limit",
		"limit=2.5":      "limit",
		"status=done":    "status",
		"status=RUNNING": "status",
		"state=Bad!":     "state",
		"cursor=x":       "cursor",
		"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("123|")):     "cursor",
		"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("abc|id-1")): "cursor",
		"cursor=" + base64.RawURLEncoding.EncodeToString([]byte("no-bar")):   "cursor",
	} {
		requireValidation(t, b.get("/v1/orders?"+query), field)
	}
	require.Len(t, b.list("limit=1").Orders, 1)
	require.Len(t, b.list("limit=500").Orders, 2)
}
