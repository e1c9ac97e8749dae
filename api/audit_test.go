package api_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
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

// GET /v1/audit streams the report (chunked, flushed as it goes) with the
// fields audit.Run reports.
func TestAuditStreamsItsReport(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		for i := range 5 {
			b.create(orderBody(withID(fmt.Sprintf("streamed-%d", i))))
		}
		srv := httptest.NewServer(b.h)
		t.Cleanup(srv.Close)
		res, err := srv.Client().Get(srv.URL + "/v1/audit?max_running=1ns")
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "application/json", res.Header.Get("Content-Type"))
		require.Equal(t, []string{"chunked"}, res.TransferEncoding, "the report is streamed, not buffered")
		var raw map[string]json.RawMessage
		require.NoError(t, json.NewDecoder(res.Body).Decode(&raw))
		require.ElementsMatch(t, []string{"checked_at", "orders", "effects", "earlier_incarnations", "violations"}, slices.Collect(maps.Keys(raw)))

		var rep audit.Report
		body, err := json.Marshal(raw)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(body, &rep))
		require.Equal(t, map[string]int{"running": 5}, rep.Orders)
		require.Len(t, rep.Violations, 5)
		for _, v := range rep.Violations {
			require.Equal(t, audit.RuleStuck, v.Rule)
		}
	})
}

// An audit that cannot reach Redis is a 503 problem, not a broken report.
func TestAuditWithoutRedis(t *testing.T) {
	t.Parallel()
	r := redistest.New(t, redistest.BackendMiniredis)
	b := setup(t, r)
	r.Stop()
	res := b.get("/v1/audit")
	requireProblem(t, res, http.StatusServiceUnavailable)
	requireRetryAfter(t, res)
}
