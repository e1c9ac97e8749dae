package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orderflow/orderflow/api"
	"github.com/orderflow/orderflow/engine"
	"github.com/orderflow/orderflow/internal/redistest"
	"github.com/orderflow/orderflow/statemachine"
	"github.com/orderflow/orderflow/tasks"
)

// BenchmarkCreateOrder is POST /v1/orders through the whole handler
// (decoding, validation, first task, instance) on a real redis-server.
func BenchmarkCreateOrder(b *testing.B) {
	r := redistest.New(b, redistest.BackendRedis)
	c := r.Client(b)
	store := statemachine.NewStore(c, statemachine.StoreConfig{})
	b.Cleanup(store.Close)
	eng, err := engine.New(engine.Config{}, store, statemachine.NewOrderRegistry(), nil, tasks.NewQueue(c, tasks.QueueConfig{}), nil)
	if err != nil {
		b.Fatal(err)
	}
	h := api.New(api.Config{}, api.Deps{Engine: eng})
	b.Cleanup(h.Close)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		body := fmt.Sprintf(`{"order_id":"b-%d","customer_id":"cust-42","currency":"USD","items":[{"sku":"SKU-ABC","qty":2,"unit_price_cents":2499}]}`, i)
		req := httptest.NewRequest(http.MethodPost, "/v1/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
