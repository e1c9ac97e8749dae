package orders_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/orders"
)

// validRequest returns a request that passes validation; each test changes
// one thing in it.
func validRequest() orders.Request {
	return orders.Request{
		OrderID:    "order-1",
		CustomerID: "cust-42",
		Currency:   "USD",
		Items: []orders.Item{
			{SKU: "SKU-A", Qty: 2, UnitPriceCents: 2499},
			{SKU: "SKU-B", Qty: 1, UnitPriceCents: 100},
		},
		Metadata: map[string]string{"channel": "web"},
	}
}

// items returns n valid items.
func items(n int) []orders.Item {
	out := make([]orders.Item, n)
	for i := range out {
		out[i] = orders.Item{SKU: fmt.Sprintf("SKU-%d", i), Qty: 1, UnitPriceCents: 1}
	}
	return out
}

// metadata returns n valid pairs.
func metadata(n int) map[string]string {
	out := make(map[string]string, n)
	for i := range n {
		out[fmt.Sprintf("k%d", i)] = "v"
	}
	return out
}

// invalidFields validates r and returns the fields it reports, nil when it
// is valid.
func invalidFields(t *testing.T, r orders.Request) []string {
	t.Helper()
	_, err := r.Validate()
	if err == nil {
		return nil
	}
	var ve *orders.ValidationError
	require.True(t, errors.As(err, &ve), "want a *ValidationError, got %T: %v", err, err)
	require.NotEmpty(t, ve.Errors)
	fields := make([]string, len(ve.Errors))
	for i, fe := range ve.Errors {
		require.NotEmpty(t, fe.Message, "field %s", fe.Field)
		fields[i] = fe.Field
	}
	return fields
}

func TestRequestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(r *orders.Request)
		want   []string // the fields reported; nil: valid
	}{
		{name: "valid", change: func(*orders.Request) {}},

		{name: "order_id absent", change: func(r *orders.Request) { r.OrderID = "" }},
		{name: "order_id of every allowed character", change: func(r *orders.Request) { r.OrderID = "azAZ09._:-" }},
		{name: "order_id of one character", change: func(r *orders.Request) { r.OrderID = "x" }},
		{name: "order_id of 128 characters", change: func(r *orders.Request) { r.OrderID = strings.Repeat("a", 128) }},
		{name: "order_id of 129 characters", change: func(r *orders.Request) { r.OrderID = strings.Repeat("a", 129) }, want: []string{"order_id"}},
		{name: "order_id with a space", change: func(r *orders.Request) { r.OrderID = "order 1" }, want: []string{"order_id"}},
		{name: "order_id with a slash", change: func(r *orders.Request) { r.OrderID = "a/b" }, want: []string{"order_id"}},
		{name: "order_id with a trailing newline", change: func(r *orders.Request) { r.OrderID = "order-1\n" }, want: []string{"order_id"}},
		{name: "order_id not ASCII", change: func(r *orders.Request) { r.OrderID = "ordé" }, want: []string{"order_id"}},

		{name: "customer_id missing", change: func(r *orders.Request) { r.CustomerID = "" }, want: []string{"customer_id"}},
		{name: "customer_id of 128 characters", change: func(r *orders.Request) { r.CustomerID = strings.Repeat("c", 128) }},
		{name: "customer_id of 129 characters", change: func(r *orders.Request) { r.CustomerID = strings.Repeat("c", 129) }, want: []string{"customer_id"}},
		{name: "customer_id of 128 two-byte runes", change: func(r *orders.Request) { r.CustomerID = strings.Repeat("é", 128) }},
		{name: "customer_id of 128 four-byte runes", change: func(r *orders.Request) { r.CustomerID = strings.Repeat("🙂", 128) }},
		{name: "customer_id of 129 two-byte runes", change: func(r *orders.Request) { r.CustomerID = strings.Repeat("é", 129) }, want: []string{"customer_id"}},
		{name: "customer_id not UTF-8", change: func(r *orders.Request) { r.CustomerID = "c\xff" }, want: []string{"customer_id"}},

		{name: "currency missing", change: func(r *orders.Request) { r.Currency = "" }, want: []string{"currency"}},
		{name: "currency lowercase", change: func(r *orders.Request) { r.Currency = "usd" }, want: []string{"currency"}},
		{name: "currency of two letters", change: func(r *orders.Request) { r.Currency = "US" }, want: []string{"currency"}},
		{name: "currency of four letters", change: func(r *orders.Request) { r.Currency = "USDD" }, want: []string{"currency"}},
		{name: "currency with a digit", change: func(r *orders.Request) { r.Currency = "US1" }, want: []string{"currency"}},
		{name: "currency not ASCII", change: func(r *orders.Request) { r.Currency = "ÜSD" }, want: []string{"currency"}},

		{name: "items missing", change: func(r *orders.Request) { r.Items = nil }, want: []string{"items"}},
		{name: "items empty", change: func(r *orders.Request) { r.Items = []orders.Item{} }, want: []string{"items"}},
		{name: "one item", change: func(r *orders.Request) { r.Items = items(1) }},
		{name: "100 items", change: func(r *orders.Request) { r.Items = items(100) }},
		{name: "101 items", change: func(r *orders.Request) { r.Items = items(101) }, want: []string{"items"}},

		{name: "sku missing", change: func(r *orders.Request) { r.Items[1].SKU = "" }, want: []string{"items[1].sku"}},
		{name: "sku of 64 characters", change: func(r *orders.Request) { r.Items[0].SKU = strings.Repeat("s", 64) }},
		{name: "sku of 64 three-byte runes", change: func(r *orders.Request) { r.Items[0].SKU = strings.Repeat("€", 64) }},
		{name: "sku of 65 characters", change: func(r *orders.Request) { r.Items[0].SKU = strings.Repeat("s", 65) }, want: []string{"items[0].sku"}},
		{name: "sku not UTF-8", change: func(r *orders.Request) { r.Items[0].SKU = "\xc3" }, want: []string{"items[0].sku"}},

		{name: "qty 0", change: func(r *orders.Request) { r.Items[0].Qty = 0 }, want: []string{"items[0].qty"}},
		{name: "qty negative", change: func(r *orders.Request) { r.Items[0].Qty = -1 }, want: []string{"items[0].qty"}},
		{name: "qty 1", change: func(r *orders.Request) { r.Items[0].Qty = 1 }},
		{name: "qty 1000", change: func(r *orders.Request) { r.Items[0].Qty = 1000 }},
		{name: "qty 1001", change: func(r *orders.Request) { r.Items[0].Qty = 1001 }, want: []string{"items[0].qty"}},

		{name: "unit_price_cents 0", change: func(r *orders.Request) { r.Items[0].UnitPriceCents = 0 }},
		{name: "unit_price_cents 1e9", change: func(r *orders.Request) { r.Items[0].UnitPriceCents = 1_000_000_000 }},
		{name: "unit_price_cents negative", change: func(r *orders.Request) { r.Items[0].UnitPriceCents = -1 }, want: []string{"items[0].unit_price_cents"}},
		{name: "unit_price_cents 1e9+1", change: func(r *orders.Request) { r.Items[0].UnitPriceCents = 1_000_000_001 }, want: []string{"items[0].unit_price_cents"}},

		{name: "metadata absent", change: func(r *orders.Request) { r.Metadata = nil }},
		{name: "metadata of 32 pairs", change: func(r *orders.Request) { r.Metadata = metadata(32) }},
		{name: "metadata of 33 pairs", change: func(r *orders.Request) { r.Metadata = metadata(33) }, want: []string{"metadata"}},
		{name: "metadata key empty", change: func(r *orders.Request) { r.Metadata = map[string]string{"": "v"} }, want: []string{"metadata"}},
		{name: "metadata key of 64 characters", change: func(r *orders.Request) { r.Metadata = map[string]string{strings.Repeat("k", 64): "v"} }},
		{name: "metadata key of 64 two-byte runes", change: func(r *orders.Request) { r.Metadata = map[string]string{strings.Repeat("é", 64): "v"} }},
		{name: "metadata key of 65 characters", change: func(r *orders.Request) { r.Metadata = map[string]string{strings.Repeat("k", 65): "v"} }, want: []string{"metadata"}},
		{name: "metadata key not UTF-8", change: func(r *orders.Request) { r.Metadata = map[string]string{"k\xff": "v"} }, want: []string{"metadata"}},
		{name: "metadata value empty", change: func(r *orders.Request) { r.Metadata = map[string]string{"k": ""} }},
		{name: "metadata value of 512 characters", change: func(r *orders.Request) { r.Metadata = map[string]string{"k": strings.Repeat("v", 512)} }},
		{name: "metadata value of 512 four-byte runes", change: func(r *orders.Request) { r.Metadata = map[string]string{"k": strings.Repeat("🙂", 512)} }},
		{name: "metadata value of 513 characters", change: func(r *orders.Request) { r.Metadata = map[string]string{"k": strings.Repeat("v", 513)} }, want: []string{"metadata.k"}},
		{name: "metadata value not UTF-8", change: func(r *orders.Request) { r.Metadata = map[string]string{"k": "\xff"} }, want: []string{"metadata.k"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := validRequest()
			tc.change(&r)
			require.Equal(t, tc.want, invalidFields(t, r))
		})
	}
}

func TestRequestValidateReportsEveryField(t *testing.T) {
	t.Parallel()
	r := orders.Request{
		OrderID:    "not valid",
		CustomerID: "",
		Currency:   "usd",
		Items: []orders.Item{
			{SKU: "", Qty: 0, UnitPriceCents: -1},
			{SKU: "ok", Qty: 1, UnitPriceCents: 1},
			{SKU: strings.Repeat("s", 65), Qty: 1001, UnitPriceCents: 1_000_000_001},
		},
		Metadata: map[string]string{"a": strings.Repeat("v", 513), "b": strings.Repeat("v", 513)},
	}
	require.ElementsMatch(t, []string{
		"order_id", "customer_id", "currency",
		"items[0].sku", "items[0].qty", "items[0].unit_price_cents",
		"items[2].sku", "items[2].qty", "items[2].unit_price_cents",
		"metadata.a", "metadata.b",
	}, invalidFields(t, r))

	_, err := r.Validate()
	require.EqualError(t, err, "11 fields are invalid")
	one := orders.Request{Currency: "USD", CustomerID: "c", Items: items(1), OrderID: "a b"}
	_, err = one.Validate()
	require.EqualError(t, err, "order_id: must match [A-Za-z0-9._:-]{1,128}", "one error names its field")
}

// A bad metadata key must not hide the errors of the other pairs. Map order
// is random, so the request is validated many times.
func TestRequestValidateReportsBadMetadataValuesBesideABadKey(t *testing.T) {
	t.Parallel()
	r := validRequest()
	r.Metadata = map[string]string{"": "v", "k": strings.Repeat("v", 513)}
	for range 50 {
		require.ElementsMatch(t, []string{"metadata", "metadata.k"}, invalidFields(t, r))
	}
}

func TestRequestValidateInput(t *testing.T) {
	t.Parallel()
	r := validRequest()
	in, err := r.Validate()
	require.NoError(t, err)
	require.Equal(t, orders.Input{
		CustomerID: "cust-42", Currency: "USD", AmountCents: 2*2499 + 100,
		Items: r.Items, Metadata: r.Metadata,
	}, in)
}

func TestRequestValidateAmount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		items []orders.Item
		want  int64
	}{
		{"free", []orders.Item{{SKU: "a", Qty: 1000, UnitPriceCents: 0}}, 0},
		{"one line", []orders.Item{{SKU: "a", Qty: 3, UnitPriceCents: 7}}, 21},
		{"several lines", []orders.Item{{SKU: "a", Qty: 3, UnitPriceCents: 7}, {SKU: "b", Qty: 1000, UnitPriceCents: 1_000_000_000}, {SKU: "c", Qty: 1, UnitPriceCents: 1}}, 21 + 1_000_000_000_000 + 1},
		{"the largest legal order", func() []orders.Item {
			its := items(orders.MaxItems)
			for i := range its {
				its[i].Qty, its[i].UnitPriceCents = orders.MaxQty, orders.MaxUnitPriceCents
			}
			return its
		}(), 100 * 1000 * 1_000_000_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := validRequest()
			r.Items = tc.items
			in, err := r.Validate()
			require.NoError(t, err)
			require.Equal(t, tc.want, in.AmountCents)
		})
	}
}

// Lines out of range must not wrap the total into a plausible amount; they
// are reported, and so is the overflow.
func TestRequestValidateOverflow(t *testing.T) {
	t.Parallel()
	r := validRequest()
	r.Items = []orders.Item{{SKU: "a", Qty: 1 << 40, UnitPriceCents: 1 << 40}}
	require.ElementsMatch(t, []string{"items[0].qty", "items[0].unit_price_cents", "items"}, invalidFields(t, r))
}

func TestRequestFingerprint(t *testing.T) {
	t.Parallel()
	base := validRequest()
	base.Metadata = map[string]string{"a": "1", "b": "2", "c": "3"}
	fp := base.Fingerprint()
	require.Len(t, fp, 32)
	require.Equal(t, fp, base.Fingerprint(), "stable")

	t.Run("ignores metadata key order and white space", func(t *testing.T) {
		t.Parallel()
		for _, body := range []string{
			`{"order_id":"order-1","customer_id":"cust-42","currency":"USD","items":[{"sku":"SKU-A","qty":2,"unit_price_cents":2499},{"sku":"SKU-B","qty":1,"unit_price_cents":100}],"metadata":{"a":"1","b":"2","c":"3"}}`,
			`{"metadata":{"c":"3","a":"1","b":"2"},"items":[{"unit_price_cents":2499,"qty":2,"sku":"SKU-A"},{"sku":"SKU-B","unit_price_cents":100,"qty":1}],
			  "currency":"USD", "customer_id":"cust-42", "order_id":"order-1"}`,
		} {
			var r orders.Request
			require.NoError(t, json.Unmarshal([]byte(body), &r))
			require.Equal(t, fp, r.Fingerprint(), body)
		}
		r := validRequest()
		r.Metadata = map[string]string{}
		for _, k := range []string{"c", "b", "a"} {
			r.Metadata[k] = base.Metadata[k]
		}
		require.Equal(t, fp, r.Fingerprint())
	})

	t.Run("differs when any field differs", func(t *testing.T) {
		t.Parallel()
		seen := map[string]string{fp: "base"}
		for name, change := range map[string]func(r *orders.Request){
			"order_id":                 func(r *orders.Request) { r.OrderID = "order-2" },
			"order_id absent":          func(r *orders.Request) { r.OrderID = "" },
			"customer_id":              func(r *orders.Request) { r.CustomerID = "cust-43" },
			"currency":                 func(r *orders.Request) { r.Currency = "EUR" },
			"sku":                      func(r *orders.Request) { r.Items[0].SKU = "SKU-Z" },
			"qty":                      func(r *orders.Request) { r.Items[0].Qty = 3 },
			"unit_price_cents":         func(r *orders.Request) { r.Items[0].UnitPriceCents = 2500 },
			"item order":               func(r *orders.Request) { r.Items[0], r.Items[1] = r.Items[1], r.Items[0] },
			"an item more":             func(r *orders.Request) { r.Items = append(r.Items, orders.Item{SKU: "C", Qty: 1}) },
			"metadata value":           func(r *orders.Request) { r.Metadata["a"] = "9" },
			"metadata key":             func(r *orders.Request) { r.Metadata["d"] = r.Metadata["c"]; delete(r.Metadata, "c") },
			"metadata pair more":       func(r *orders.Request) { r.Metadata["d"] = "4" },
			"metadata absent":          func(r *orders.Request) { r.Metadata = nil },
			"customer_id and currency": func(r *orders.Request) { r.CustomerID, r.Currency = "cust-42U", "SD" },
		} {
			r := validRequest()
			r.Metadata = maps.Clone(base.Metadata)
			r.Items = append([]orders.Item(nil), base.Items...)
			change(&r)
			got := r.Fingerprint()
			require.NotContains(t, seen, got, "%s gives the fingerprint of %s", name, seen[got])
			seen[got] = name
		}
	})
}

func TestValidIDMatchesIDPattern(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "a", "order-12345", "A.b_c:d-9", "has space", "slash/", "é", "x\n",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "tab\t", "ok:ok"} {
		require.Equal(t, orders.IDPattern.MatchString(id), orders.ValidID(id), "%q", id)
	}
}
