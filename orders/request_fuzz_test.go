package orders_test

import (
	"encoding/json"
	"math/big"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/orders"
)

// FuzzValidate decodes arbitrary JSON into a Request and validates it.
// Validate never panics; it accepts exactly the requests that meet API.md's
// limits, re-checked here independently; the amount it computes is exact;
// and the fingerprint is deterministic and ignores map order.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{
		`{"order_id":"order-12345","customer_id":"cust-42","currency":"USD","items":[{"sku":"SKU-ABC","qty":2,"unit_price_cents":2499}],"metadata":{"channel":"web"}}`,
		`{"customer_id":"c","currency":"EUR","items":[{"sku":"A","qty":1000,"unit_price_cents":1000000000}]}`,
		`{"customer_id":"c","currency":"EUR","items":[{"sku":"A","qty":1001,"unit_price_cents":1000000001}]}`,
		`{"customer_id":"c","currency":"EUR","items":[{"sku":"A","qty":9223372036854775807,"unit_price_cents":9223372036854775807},{"sku":"B","qty":2,"unit_price_cents":3}]}`,
		`{"customer_id":"c","currency":"EUR","items":[{"sku":"A","qty":-1,"unit_price_cents":-9223372036854775808}]}`,
		`{"customer_id":"","currency":"usd","items":[]}`,
		`{"order_id":"a b","customer_id":"\u00e9\ud800","currency":"US","items":[{"sku":"","qty":0,"unit_price_cents":0}],"metadata":{"":"x"}}`,
		`{"order_id":"` + strings.Repeat("a", 129) + `","customer_id":"` + strings.Repeat("é", 128) + `","currency":"USD","items":[{"sku":"` + strings.Repeat("世", 64) + `","qty":1,"unit_price_cents":0}]}`,
		`{"customer_id":"c","currency":"USD","items":[{"sku":"A","qty":1,"unit_price_cents":1}],"metadata":{"k":"` + strings.Repeat("v", 513) + `","` + strings.Repeat("k", 65) + `":"v"}}`,
		`{"customer_id":"c","currency":"USD","items":[{"sku":"A","qty":"1","unit_price_cents":1.5}]}`,
		`{"Customer_ID":"c","CURRENCY":"USD","items":[{"SKU":"A","Qty":1,"unit_price_cents":1}],"extra":1}`,
		`null`, `[]`, `{}`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req orders.Request
		_ = json.Unmarshal(b, &req) // a partial decode is validated too

		input, err := req.Validate()
		problems := independentProblems(&req)
		if err != nil {
			var ve *orders.ValidationError
			require.ErrorAs(t, err, &ve)
			require.NotEmpty(t, ve.Errors)
			for _, fe := range ve.Errors {
				require.NotEmpty(t, fe.Field)
				require.NotEmpty(t, fe.Message)
			}
			require.NotEmpty(t, problems, "Validate refused a request that meets API.md: %v", err)
		} else {
			require.Empty(t, problems, "Validate accepted a request that breaks API.md")
			want := new(big.Int)
			for _, it := range req.Items {
				want.Add(want, new(big.Int).Mul(big.NewInt(it.Qty), big.NewInt(it.UnitPriceCents)))
			}
			require.True(t, want.IsInt64(), "amount %s", want)
			require.Equal(t, want.Int64(), input.AmountCents, "amount_cents is sum(qty*unit_price_cents)")
			require.Equal(t, req.CustomerID, input.CustomerID)
			require.Equal(t, req.Currency, input.Currency)
			require.Equal(t, req.Items, input.Items)
			require.Equal(t, req.Metadata, input.Metadata)
		}

		// The fingerprint is deterministic, and survives a round trip through
		// JSON (map key order, white space).
		fp := req.Fingerprint()
		require.Len(t, fp, 32)
		require.Equal(t, fp, req.Fingerprint())
		again := req
		if req.Metadata != nil {
			again.Metadata = make(map[string]string, len(req.Metadata))
			for k, v := range req.Metadata {
				again.Metadata[k] = v
			}
		}
		require.Equal(t, fp, again.Fingerprint())
		enc, err := json.Marshal(req)
		require.NoError(t, err)
		var decoded orders.Request
		require.NoError(t, json.Unmarshal(enc, &decoded))
		// Strings decoded by encoding/json are valid UTF-8, so they encode
		// back unchanged.
		require.Equal(t, fp, decoded.Fingerprint(), "fingerprint after a JSON round trip of %s", enc)
	})
}

var (
	fuzzIDPattern       = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	fuzzCurrencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// independentProblems re-checks API.md's limits on req, written apart from
// Validate, and returns what breaks them.
func independentProblems(req *orders.Request) []string {
	var out []string
	chars := func(s string) (int, bool) { return utf8.RuneCountInString(s), utf8.ValidString(s) }
	if req.OrderID != "" && !fuzzIDPattern.MatchString(req.OrderID) {
		out = append(out, "order_id")
	}
	if n, ok := chars(req.CustomerID); !ok || n < 1 || n > 128 {
		out = append(out, "customer_id")
	}
	if !fuzzCurrencyPattern.MatchString(req.Currency) {
		out = append(out, "currency")
	}
	if len(req.Items) < 1 || len(req.Items) > 100 {
		out = append(out, "items")
	}
	total := new(big.Int)
	for _, it := range req.Items {
		if n, ok := chars(it.SKU); !ok || n < 1 || n > 64 {
			out = append(out, "sku")
		}
		if it.Qty < 1 || it.Qty > 1000 {
			out = append(out, "qty")
		}
		if it.UnitPriceCents < 0 || it.UnitPriceCents > 1_000_000_000 {
			out = append(out, "unit_price_cents")
		}
		total.Add(total, new(big.Int).Mul(big.NewInt(it.Qty), big.NewInt(it.UnitPriceCents)))
	}
	if !total.IsInt64() {
		out = append(out, "total")
	}
	// API.md: at most 32 pairs; the key and value lengths are the limits
	// orders.MaxMetadataKey and orders.MaxMetadataValue add to it.
	if len(req.Metadata) > 32 {
		out = append(out, "metadata")
	}
	for k, v := range req.Metadata {
		if n, ok := chars(k); !ok || n < 1 || n > 64 {
			out = append(out, "metadata key")
		}
		if n, ok := chars(v); !ok || n > 512 {
			out = append(out, "metadata value")
		}
	}
	return out
}
