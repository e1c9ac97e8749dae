package audit

import (
	"context"

	"github.com/orderflow/orderflow/providers"
)

// Ledger is where an audit reads the effects the providers applied.
type Ledger interface {
	// ForOrders returns the entries of each of orderIDs that has any,
	// each order's in the order applied.
	ForOrders(ctx context.Context, orderIDs []string) (map[string][]providers.LedgerEntry, error)
	// ScanOrders calls fn with the ID of every order that has effect
	// entries, at least once each (orders with only assessments, which
	// change nothing, may be left out); an error from fn stops the scan.
	ScanOrders(ctx context.Context, fn func(orderID string) error) error
}

// The simulators' ledgers (providers.Ledger) are the default Ledger.
var _ Ledger = (*providers.Ledger)(nil)
