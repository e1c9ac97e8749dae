package cli

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// workflowFlags configure the order workflow's versions: which one new
// orders take (api, dev), and version 2's warehouses and review deadline
// (worker, dev).
type workflowFlags struct {
	version       int
	warehouses    listFlag
	reviewTimeout time.Duration
}

// register adds the flags a command has: version for the processes that
// start orders, options for those that run them.
func (w *workflowFlags) register(fs *flag.FlagSet, version, options bool) {
	if version {
		fs.IntVar(&w.version, "workflow-version", 1, "the version of the order workflow new orders take: 1 or 2")
	}
	if options {
		fs.Var(&w.warehouses, "warehouses", "workflow v2: the warehouses to reserve at in parallel (comma-separated; default main)")
		fs.DurationVar(&w.reviewTimeout, "review-timeout", statemachine.DefaultReviewTimeout, "workflow v2: how long an order waits in review before it is cancelled")
	}
}

// registry returns the order workflow's registry the flags describe.
func (w *workflowFlags) registry() (*statemachine.Registry, error) {
	var errs []error
	for _, wh := range w.warehouses {
		if !orders.ValidID(wh) || strings.Contains(wh, statemachine.BranchSep) {
			errs = append(errs, fmt.Errorf("--warehouses: %q must match [A-Za-z0-9._:-]{1,128}", wh))
		}
	}
	if w.reviewTimeout < 0 {
		errs = append(errs, fmt.Errorf("--review-timeout must not be negative, got %s", w.reviewTimeout))
	}
	if w.version != 0 && w.version != 1 && w.version != 2 {
		errs = append(errs, fmt.Errorf("--workflow-version must be 1 or 2, got %d", w.version))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, usageError{err}
	}
	reg, err := statemachine.OrderRegistry(statemachine.OrderV2Options{Warehouses: w.warehouses, ReviewTimeout: w.reviewTimeout}, w.version)
	if err != nil {
		return nil, usageError{err}
	}
	return reg, nil
}
