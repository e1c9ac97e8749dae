package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/audit"
	"github.com/orderflow/orderflow/internal/redistest"
)

func TestAudit(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		b.create(orderBody(withID("audited")))

		rep := decode[audit.Report](t, b.get("/v1/audit"), http.StatusOK)
		require.True(t, rep.OK(), "violations: %v", rep.Violations)
		require.Equal(t, map[string]int{"running": 1}, rep.Orders)

		rep = decode[audit.Report](t, b.get("/v1/audit?max_running=1ns"), http.StatusOK)
		require.Len(t, rep.Violations, 1)
		require.Equal(t, audit.RuleStuck, rep.Violations[0].Rule)
		require.Equal(t, "audited", rep.Violations[0].OrderID)

		requireValidation(t, b.get("/v1/audit?max_running=soon"), "max_running")
		requireValidation(t, b.get("/v1/audit?max_running=-1s"), "max_running")
	})
}

func TestAuditIsForAdmins(t *testing.T) {
	t.Parallel()
	b := setupAuth(t, api.Config{})
	requireUnauthorized(t, b.get("/v1/audit"))
	for _, tok := range []api.Token{reader, writer, both} {
		requireProblem(t, b.do(http.MethodGet, "/v1/audit", "", bearer(tok)...), http.StatusForbidden)
	}
	rep := decode[audit.Report](t, b.do(http.MethodGet, "/v1/audit", "", bearer(admin)...), http.StatusOK)
	require.True(t, rep.OK())
}
