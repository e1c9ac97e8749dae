package providers

import (
	"fmt"
	"slices"
	"strings"
)

// The broken modes of a simulated provider (Faults.Broken). They make it
// misbehave in ways the contract forbids, to prove that the audit catches
// a provider that does.
const (
	// BrokenIgnoreKeys makes the provider forget idempotency: every call
	// applies its effect again as if its key were new, and refunds and
	// releases undo again what was undone already.
	BrokenIgnoreKeys = "ignore-keys"
	// BrokenApplyDeclines makes the provider apply the effect of a call it
	// declines (charge 402, reserve 409, ship 422), ledger entry included,
	// while it still answers the decline.
	BrokenApplyDeclines = "apply-declines"
	// BrokenDropCompensations makes refunds and releases answer success
	// but apply nothing: no ledger entry, and the stock is not returned.
	BrokenDropCompensations = "drop-compensations"
)

// brokenModes lists the broken modes.
var brokenModes = []string{BrokenIgnoreKeys, BrokenApplyDeclines, BrokenDropCompensations}

// validateBroken reports the first unknown mode.
func validateBroken(modes []string) error {
	for _, m := range modes {
		if !slices.Contains(brokenModes, m) {
			return fmt.Errorf("providers: Faults.Broken: unknown mode %q (want %s)", m, strings.Join(brokenModes, ", "))
		}
	}
	return nil
}

// knownBroken returns the known modes of modes, each once.
func knownBroken(modes []string) []string {
	var out []string
	for _, m := range modes {
		if slices.Contains(brokenModes, m) && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}
