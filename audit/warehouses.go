package audit

import (
	"fmt"
	"sort"
	"strings"

	"github.com/orderflow/orderflow/providers"
)

// stock is what an order's reservations still hold. With several
// warehouses an order reserves at each and releases the losers, so the
// rules count per warehouse and net: a release gives back a reservation at
// its own warehouse only. A release that finds nothing to give back makes
// no ledger entry, and one more than the reservations at a warehouse
// (which a provider could only write by breaking its contract) nets to
// nothing rather than below.
type stock struct {
	// perWarehouse is set when a reservation or release names a
	// warehouse. Orders that name none (workflow v1) are audited by the
	// counts alone, as before warehouses.
	perWarehouse bool
	// held counts the reservations not released, per warehouse ("" is the
	// default one); never below 0.
	held map[string]int
}

// stockOf nets the reservations and releases among entries per warehouse.
func stockOf(entries []providers.LedgerEntry) stock {
	st := stock{held: map[string]int{}}
	for _, e := range entries {
		switch e.Op {
		case providers.OpReserve:
			st.held[e.Warehouse]++
		case providers.OpRelease:
			st.held[e.Warehouse]--
		default:
			continue
		}
		st.perWarehouse = st.perWarehouse || e.Warehouse != ""
	}
	for wh, n := range st.held {
		if n <= 0 {
			delete(st.held, wh)
		}
	}
	return st
}

// total returns the reservations held, at all warehouses.
func (st stock) total() int {
	n := 0
	for _, h := range st.held {
		n += h
	}
	return n
}

// heldOnce reports whether exactly one reservation is held, as a completed
// order's must be: at one warehouse, every other one released; without
// warehouses, one reservation and no release.
func (st stock) heldOnce(ops map[string]int) bool {
	if !st.perWarehouse {
		return ops[providers.OpReserve] == 1 && ops[providers.OpRelease] == 0
	}
	return st.total() == 1
}

// allReleased reports whether every reservation was released at its
// warehouse, as a failed or cancelled order's must be; without
// warehouses, one release per reservation.
func (st stock) allReleased(ops map[string]int) bool {
	if !st.perWarehouse {
		return ops[providers.OpRelease] == ops[providers.OpReserve]
	}
	return st.total() == 0
}

// describeHeld lists the warehouses holding reservations, with their
// counts, in name order, or "none".
func (st stock) describeHeld() string {
	if len(st.held) == 0 {
		return "none"
	}
	names := make([]string, 0, len(st.held))
	for wh := range st.held {
		names = append(names, wh)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, wh := range names {
		if wh == "" {
			wh = "(default)"
		}
		parts[i] = fmt.Sprintf("%s %d", wh, st.held[names[i]])
	}
	return strings.Join(parts, ", ")
}
