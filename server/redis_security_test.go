package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/providers"
	"github.com/orderflow/orderflow/server"
)

// requireSystemWorks runs a worker, the API with asynqmon, and the
// simulators over conn, and requires an order to complete, asynqmon to list
// the workflow queue, and the simulators and the audit to read Redis.
func requireSystemWorks(t *testing.T, conn *server.RedisConn) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, conn.Check(ctx))
	w, err := server.NewWorker(conn.Client, providers.NewInProcess().Set(),
		server.WorkerConfig{Concurrency: 2, ShutdownTimeout: time.Second, Logger: discard}, nil)
	require.NoError(t, err)
	require.NoError(t, w.Start())
	t.Cleanup(w.Shutdown)
	p, err := server.StartAPI(conn, server.APIConfig{Listen: "127.0.0.1:0", Logger: discard}, prometheus.NewRegistry())
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, p.Shutdown) })
	sim, err := server.StartSim(conn.Client, "127.0.0.1:0", providers.SimConfig{}, discard)
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, sim.Shutdown) })

	get(t, p.URL()+"/readyz")
	res := do(t, http.MethodPost, p.URL()+"/v1/orders", `{"order_id":"secured","customer_id":"c","currency":"USD","items":[{"sku":"S","qty":1,"unit_price_cents":100}]}`)
	require.Equal(t, http.StatusAccepted, res.Code, res.Body)
	require.Eventually(t, func() bool {
		var o struct{ Status string }
		r := do(t, http.MethodGet, p.URL()+"/v1/orders/secured", "")
		return json.Unmarshal([]byte(r.Body), &o) == nil && o.Status == "completed"
	}, 20*time.Second, 20*time.Millisecond, "the worker completes the order")

	var queues struct {
		Queues []struct{ Queue string }
	}
	require.NoError(t, json.Unmarshal([]byte(get(t, p.URL()+"/monitor/api/queues").Body), &queues))
	require.NotEmpty(t, queues.Queues)
	require.Equal(t, "workflow", queues.Queues[0].Queue)

	get(t, p.URL()+"/v1/audit")
	get(t, sim.URL()+"/healthz")
	get(t, sim.URL()+"/payment/ledger")
}

func TestRedisWithPassword(t *testing.T) {
	t.Parallel()
	s := redistest.StartServer(t, redistest.Options{Password: "pw-s3cret-Redis"})
	require.Contains(t, s.URL(), "pw-s3cret-Redis")
	requireSystemWorks(t, openURL(t, s.URL()))
}

func TestRedisWithACLUser(t *testing.T) {
	t.Parallel()
	s := redistest.StartServer(t, redistest.Options{Password: "admin-pw-0123"})
	admin := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: "admin-pw-0123"})
	t.Cleanup(func() { _ = admin.Close() })
	require.NoError(t, admin.Do(context.Background(), "ACL", "SETUSER", "orderflow", "on", ">acl-s3cret", "~*", "&*", "+@all").Err())
	requireSystemWorks(t, openURL(t, "redis://orderflow:acl-s3cret@"+s.Addr()+"/0"))
}

// A wrong password, a missing one, or a user without rights fails the
// check clearly, and no message shows the password.
func TestRedisRefusedCredentials(t *testing.T) {
	t.Parallel()
	s := redistest.StartServer(t, redistest.Options{Password: "right-pw-0123"})
	admin := redis.NewClient(&redis.Options{Addr: s.Addr(), Password: "right-pw-0123"})
	t.Cleanup(func() { _ = admin.Close() })
	require.NoError(t, admin.Do(context.Background(), "ACL", "SETUSER", "weak", "on", ">weak-s3cret", "~nothing:*", "+get").Err())
	for url, want := range map[string]string{
		"redis://:wrong-s3cret@" + s.Addr():        "WRONGPASS",
		"redis://someone:wrong-s3cret@" + s.Addr(): "WRONGPASS",
		"redis://" + s.Addr():                      "NOAUTH",
		"redis://weak:weak-s3cret@" + s.Addr():     "NOPERM",
	} {
		t.Run(want, func(t *testing.T) {
			t.Parallel()
			err := openURL(t, url).Check(context.Background())
			require.ErrorContains(t, err, want)
			require.ErrorContains(t, err, "refused the credentials")
			require.ErrorContains(t, err, s.Addr())
			require.NotContains(t, err.Error(), "s3cret")
		})
	}

	// The API answers /readyz 503 without the password either.
	p, err := server.StartAPI(openURL(t, "redis://:wrong-s3cret@"+s.Addr()), server.APIConfig{Listen: "127.0.0.1:0", Logger: discard}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { shutdown(t, p.Shutdown) })
	res := do(t, http.MethodGet, p.URL()+"/readyz", "")
	require.Equal(t, http.StatusServiceUnavailable, res.Code)
	require.NotContains(t, res.Body, "s3cret")
}

// An unreachable Redis is not a settings error: components retry.
func TestRedisCheckUnreachable(t *testing.T) {
	t.Parallel()
	port, err := redistest.FreePort()
	require.NoError(t, err)
	require.NoError(t, openURL(t, "redis://127.0.0.1:"+strconv.Itoa(port)).Check(context.Background()))
}

func TestRedisTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	port, err := redistest.FreePort()
	require.NoError(t, err)
	// StartServer keeps its plain port (it checks readiness there); the
	// test talks to the TLS port, which requires client certificates.
	redistest.StartServer(t, redistest.Options{Args: []string{
		"--tls-port", strconv.Itoa(port),
		"--tls-cert-file", pki.serverCert, "--tls-key-file", pki.serverKey,
		"--tls-ca-cert-file", pki.ca, "--tls-auth-clients", "yes",
	}})
	url := "rediss://127.0.0.1:" + strconv.Itoa(port)
	full := server.RedisConfig{URL: url, CAFile: pki.ca, CertFile: pki.clientCert, KeyFile: pki.clientKey}

	conn := open(t, full)
	requireSystemWorks(t, conn)
	made, ok := conn.MakeRedisClient().(*redis.Client)
	require.True(t, ok)
	t.Cleanup(func() { _ = made.Close() })
	require.NotNil(t, made.Options().TLSConfig, "asynqmon's clients use TLS")
	require.NotNil(t, made.Options().TLSConfig.RootCAs)
	require.Len(t, made.Options().TLSConfig.Certificates, 1)
	require.NoError(t, made.Ping(context.Background()).Err())

	noCA := full
	noCA.CAFile = ""
	require.ErrorContains(t, open(t, noCA).Check(context.Background()), "TLS failed")

	// Without the client certificate Redis refuses the connection. With
	// TLS 1.3 it does so after the handshake: the client sees the alert
	// "certificate required" or, if Redis closed first, a reset.
	noCert := full
	noCert.CertFile, noCert.KeyFile = "", ""
	require.Error(t, open(t, noCert).Client.Ping(context.Background()).Err())
}

func TestRedisConfigErrors(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tls := "rediss://127.0.0.1:1"
	for _, tc := range []struct {
		name  string
		cfg   server.RedisConfig
		field string
	}{
		{"CA without TLS", server.RedisConfig{URL: "redis://127.0.0.1:1", CAFile: pki.ca}, "CAFile"},
		{"cert without TLS", server.RedisConfig{URL: "redis://127.0.0.1:1", CertFile: pki.clientCert, KeyFile: pki.clientKey}, "CertFile"},
		{"missing CA", server.RedisConfig{URL: tls, CAFile: missing}, "CAFile"},
		{"CA not PEM", server.RedisConfig{URL: tls, CAFile: notPEM}, "CAFile"},
		{"cert without key", server.RedisConfig{URL: tls, CertFile: pki.clientCert}, "KeyFile"},
		{"key without cert", server.RedisConfig{URL: tls, KeyFile: pki.clientKey}, "CertFile"},
		{"cert not PEM", server.RedisConfig{URL: tls, CertFile: notPEM, KeyFile: pki.clientKey}, "CertFile"},
		{"key of another cert", server.RedisConfig{URL: tls, CertFile: pki.clientCert, KeyFile: pki.serverKey}, "CertFile"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.cfg.Open()
			var ce *server.RedisConfigError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.field, ce.Field, err.Error())
			require.True(t, strings.HasPrefix(err.Error(), tc.field+": "), err.Error())
		})
	}
	_, err := server.RedisConfig{URL: "http://x"}.Open()
	require.ErrorContains(t, err, "redis URL")
}

// open opens cfg, closed at the end of the test.
func open(t *testing.T, cfg server.RedisConfig) *server.RedisConn {
	t.Helper()
	conn, err := cfg.Open()
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// openURL opens url, closed at the end of the test.
func openURL(t *testing.T, url string) *server.RedisConn {
	t.Helper()
	return open(t, server.RedisConfig{URL: url})
}
