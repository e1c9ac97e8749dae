package api_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/flowcontrol"
	"github.com/orderflow/orderflow/internal/redistest"
)

type providersBody struct {
	Providers []map[string]any `json:"providers"`
}

func TestProvidersPauseAndResume(t *testing.T) {
	t.Parallel()
	redistest.Each(t, func(t *testing.T, r *redistest.Instance) {
		b := setup(t, r)
		list := decode[providersBody](t, b.get("/v1/providers"), http.StatusOK)
		require.Len(t, list.Providers, len(flowcontrol.DefaultProviders))
		for i, p := range list.Providers {
			require.Equal(t, flowcontrol.DefaultProviders[i], p["name"])
			require.Equal(t, "closed", p["state"])
			for _, f := range []string{"rate_limit_rps", "in_flight", "error_rate", "opened_at"} {
				require.Contains(t, p, f)
			}
			require.Nil(t, p["opened_at"])
		}

		p := decode[map[string]any](t, b.do(http.MethodPost, "/v1/providers/payment/pause", `{"reason":"provider maintenance"}`,
			"Content-Type", "application/json"), http.StatusOK)
		require.Equal(t, "payment", p["name"])
		require.Equal(t, "paused", p["state"])
		// Pausing again is harmless.
		p = decode[map[string]any](t, b.do(http.MethodPost, "/v1/providers/payment/pause", ""), http.StatusOK)
		require.Equal(t, "paused", p["state"])
		list = decode[providersBody](t, b.get("/v1/providers"), http.StatusOK)
		states := map[string]any{}
		for _, p := range list.Providers {
			states[p["name"].(string)] = p["state"]
		}
		require.Equal(t, map[string]any{"inventory": "closed", "payment": "paused", "shipping": "closed", "risk": "closed"}, states)

		p = decode[map[string]any](t, b.do(http.MethodPost, "/v1/providers/payment/resume", ""), http.StatusOK)
		require.Equal(t, "closed", p["state"])

		requireProblem(t, b.do(http.MethodPost, "/v1/providers/bank/pause", ""), http.StatusNotFound)
		requireProblem(t, b.do(http.MethodPost, "/v1/providers/bank/resume", ""), http.StatusNotFound)
		requireProblem(t, b.do(http.MethodPost, "/v1/providers/payment/pause", "reason", "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
	})
}
