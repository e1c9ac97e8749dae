// Package orders is the order domain on top of the engine: the request a
// client sends, its validation, the order resource the API returns, and the
// activities that carry the order workflow's steps out against the
// providers.
package orders

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math/bits"
	"regexp"
	"slices"
	"unicode/utf8"

	"github.com/orderflow/orderflow/statemachine"
)

// Limits from API.md.
const (
	MaxItems          = 100
	MaxQty            = 1000
	MaxUnitPriceCents = 1_000_000_000
	MaxMetadata       = 32
	MaxMetadataKey    = 64
	MaxMetadataValue  = 512
)

// Item is one order line.
type Item struct {
	SKU            string `json:"sku"`
	Qty            int64  `json:"qty"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Request is the body of POST /v1/orders.
type Request struct {
	OrderID    string            `json:"order_id,omitempty"`
	CustomerID string            `json:"customer_id"`
	Currency   string            `json:"currency"`
	Items      []Item            `json:"items"`
	Metadata   map[string]string `json:"metadata,omitempty"`
	// Priority is "high", "normal" (the default) or "low".
	Priority string `json:"priority,omitempty"`
}

// Input is what an order instance stores as its input: the validated
// request without its ID, plus the amount the server computed.
type Input struct {
	CustomerID  string            `json:"customer_id"`
	Currency    string            `json:"currency"`
	AmountCents int64             `json:"amount_cents"`
	Items       []Item            `json:"items"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}

// FieldError is one validation failure.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every field that failed validation.
type ValidationError struct {
	Errors []FieldError
}

// Error implements error.
func (e *ValidationError) Error() string {
	if len(e.Errors) == 1 {
		return fmt.Sprintf("%s: %s", e.Errors[0].Field, e.Errors[0].Message)
	}
	return fmt.Sprintf("%d fields are invalid", len(e.Errors))
}

var (
	// IDPattern is the rule for order IDs; ValidID checks it faster.
	IDPattern       = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// ValidID reports whether id matches IDPattern: 1 to 128 characters from
// A-Z, a-z, 0-9 and "._:-".
func ValidID(id string) bool {
	if len(id) < 1 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// Validate checks r against API.md and returns the order's input, or a
// *ValidationError naming every bad field.
func (r *Request) Validate() (Input, error) {
	var errs []FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if r.OrderID != "" && !ValidID(r.OrderID) {
		bad("order_id", "must match [A-Za-z0-9._:-]{1,128}")
	}
	if n := utf8.RuneCountInString(r.CustomerID); n < 1 || n > 128 || !utf8.ValidString(r.CustomerID) {
		bad("customer_id", "is required and must be 1 to 128 characters")
	}
	if !currencyPattern.MatchString(r.Currency) {
		bad("currency", "must be three uppercase letters, such as USD")
	}
	if len(r.Items) < 1 || len(r.Items) > MaxItems {
		bad("items", "must hold 1 to %d items", MaxItems)
	}
	var total uint64
	overflow := false
	for i, it := range r.Items {
		if i >= MaxItems {
			break
		}
		f := fmt.Sprintf("items[%d]", i)
		if n := utf8.RuneCountInString(it.SKU); n < 1 || n > 64 || !utf8.ValidString(it.SKU) {
			bad(f+".sku", "is required and must be 1 to 64 characters")
		}
		if it.Qty < 1 || it.Qty > MaxQty {
			bad(f+".qty", "must be between 1 and %d", MaxQty)
		}
		if it.UnitPriceCents < 0 || it.UnitPriceCents > MaxUnitPriceCents {
			bad(f+".unit_price_cents", "must be between 0 and %d", MaxUnitPriceCents)
		}
		if it.Qty > 0 && it.UnitPriceCents >= 0 {
			hi, line := bits.Mul64(uint64(it.Qty), uint64(it.UnitPriceCents))
			sum, carry := bits.Add64(total, line, 0)
			if hi != 0 || carry != 0 || sum > 1<<62 {
				overflow = true
			}
			total = sum
		}
	}
	if overflow {
		bad("items", "the order total overflows")
	}
	if len(r.Metadata) > MaxMetadata {
		bad("metadata", "must hold at most %d pairs", MaxMetadata)
	}
	badKey := false
	for _, k := range slices.Sorted(maps.Keys(r.Metadata)) {
		if n := utf8.RuneCountInString(k); n < 1 || n > MaxMetadataKey || !utf8.ValidString(k) {
			if !badKey {
				bad("metadata", "keys must be 1 to %d characters", MaxMetadataKey)
				badKey = true
			}
			continue
		}
		if v := r.Metadata[k]; utf8.RuneCountInString(v) > MaxMetadataValue || !utf8.ValidString(v) {
			bad("metadata."+k, "must be at most %d characters", MaxMetadataValue)
		}
	}
	if _, err := statemachine.ParsePriority(r.Priority); err != nil {
		bad("priority", "must be high, normal or low")
	}
	if len(errs) > 0 {
		return Input{}, &ValidationError{Errors: errs}
	}
	return Input{
		CustomerID: r.CustomerID, Currency: r.Currency, AmountCents: int64(total),
		Items: r.Items, Metadata: r.Metadata,
	}, nil
}

// PriorityOf returns the request's priority, normal when it has none. Call
// it on a request that passed Validate.
func (r *Request) PriorityOf() statemachine.Priority {
	p, _ := statemachine.ParsePriority(r.Priority)
	return p
}

// Fingerprint identifies the request's content, order_id included: two
// requests with the same fingerprint are replays of each other. Map keys are
// encoded sorted, so the fingerprint ignores key order and white space.
func (r *Request) Fingerprint() string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}
