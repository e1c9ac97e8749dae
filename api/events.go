package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/orders"
	"github.com/orderflow/orderflow/statemachine"
)

// GET /v1/events streams order changes as server-sent events
// (text/event-stream), for pages that show orders live.
//
// One hub per API process polls Redis once a second while any stream is
// open, whatever the number of streams: it reads the digest (revision and
// progress, statemachine.Digest) of the newest eventsRecent orders and of
// the orders streams asked for by ID, and loads in full only the orders
// whose digest changed. It neither writes to Redis nor touches the
// engine's path.
//
// A stream first sends a "hello" event: the client (re)reads what it
// shows then, so that nothing that changed before the stream began, or
// while it was reconnecting, is missed. Each change is then an "order"
// event whose data is the order resource; a comment every
// eventsKeepAlive keeps proxies from closing an idle stream. A client too
// slow to take its events is disconnected, and reconnects.
const (
	eventsInterval  = time.Second
	eventsRecent    = 200
	eventsMaxIDs    = 100
	eventsMaxLoads  = 200 // orders loaded per poll; later polls take the rest
	eventsKeepAlive = 15 * time.Second
	eventsBuffer    = 256
)

// eventSub is one open stream.
type eventSub struct {
	// recent: the stream follows the newest orders; ids: these orders.
	recent bool
	ids    map[string]bool
	ch     chan []byte
	// gone is closed when the hub drops the stream.
	gone     chan struct{}
	dropOnce sync.Once
}

func (sub *eventSub) drop() { sub.dropOnce.Do(func() { close(sub.gone) }) }

// send queues a frame, or drops a stream whose client does not keep up.
func (sub *eventSub) send(frame []byte) {
	select {
	case sub.ch <- frame:
	default:
		sub.drop()
	}
}

// stamp is what tells that an order changed.
type stamp struct {
	rev      int64
	progress string
}

// eventHub polls for changes while streams are open and fans them out.
type eventHub struct {
	store    *statemachine.Store
	log      *slog.Logger
	interval time.Duration

	mu      sync.Mutex
	subs    map[*eventSub]struct{}
	running bool
	closed  bool
	stop    chan struct{} // closed by close
	loops   sync.WaitGroup

	// pollMu serializes polls; the fields below belong to the poll.
	pollMu sync.Mutex
	stamps map[string]stamp
	// windowKnown: the last poll read the newest orders, so an order of
	// theirs without a stamp is new.
	windowKnown bool
}

func newEventHub(store *statemachine.Store, log *slog.Logger) *eventHub {
	return &eventHub{store: store, log: log, interval: eventsInterval, subs: map[*eventSub]struct{}{}, stamps: map[string]stamp{},
		stop: make(chan struct{})}
}

// subscribe opens a stream. Its hello frame is queued first; then a poll
// runs at once, so that the orders the stream follows are known before
// the client reads them, and the hub polls on until the last stream
// leaves.
func (h *eventHub) subscribe(ctx context.Context, recent bool, ids []string) (*eventSub, error) {
	sub := &eventSub{recent: recent, ids: map[string]bool{}, ch: make(chan []byte, eventsBuffer), gone: make(chan struct{})}
	for _, id := range ids {
		sub.ids[id] = true
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, unavailable("the server is shutting down")
	}
	h.subs[sub] = struct{}{}
	start := !h.running
	if start {
		h.running = true
		h.loops.Add(1)
	}
	h.mu.Unlock()
	hello, _ := json.Marshal(map[string]any{"at": h.store.Now(), "interval_ms": h.interval.Milliseconds()})
	sub.send(frame("hello", hello))
	if err := h.poll(ctx); err != nil {
		h.log.Warn("polling for order changes", "err", err)
	}
	if start {
		go h.run()
	}
	return sub, nil
}

// unsubscribe closes a stream.
func (h *eventHub) unsubscribe(sub *eventSub) {
	h.mu.Lock()
	delete(h.subs, sub)
	h.mu.Unlock()
	sub.drop()
}

// run polls every interval until no stream is open.
func (h *eventHub) run() {
	defer h.loops.Done()
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-h.stop:
			return
		}
		h.mu.Lock()
		if len(h.subs) == 0 || h.closed {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), h.interval*5)
		if err := h.poll(ctx); err != nil {
			h.log.Warn("polling for order changes", "err", err)
		}
		cancel()
	}
}

// close drops every stream, refuses new ones, and waits for the polling
// to stop.
func (h *eventHub) close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		close(h.stop)
	}
	for sub := range h.subs {
		sub.drop()
	}
	h.mu.Unlock()
	h.loops.Wait()
}

// poll reads what the open streams follow, and sends each stream the
// orders of its own that changed since the last poll.
func (h *eventHub) poll(ctx context.Context) error {
	h.pollMu.Lock()
	defer h.pollMu.Unlock()
	h.mu.Lock()
	subs := make([]*eventSub, 0, len(h.subs))
	recent := false
	ids := map[string]bool{}
	for sub := range h.subs {
		subs = append(subs, sub)
		recent = recent || sub.recent
		for id := range sub.ids {
			ids[id] = true
		}
	}
	h.mu.Unlock()
	if len(subs) == 0 {
		return nil
	}

	var digests []*statemachine.Digest
	window := map[string]bool{}
	if recent {
		err := h.store.EachRecent(ctx, eventsRecent, func(ds []*statemachine.Digest) error {
			for _, d := range ds {
				window[d.ID] = true
			}
			digests = append(digests, ds...)
			return nil
		})
		if err != nil {
			return err
		}
	}
	var named []string
	for id := range ids {
		if !window[id] {
			named = append(named, id)
		}
	}
	ds, err := h.store.Digests(ctx, named)
	if err != nil {
		return err
	}
	digests = append(digests, ds...)

	var changed []string
	next := map[string]stamp{}
	for _, d := range digests {
		if d == nil {
			continue
		}
		st := stamp{d.Rev, d.Progress}
		prev, known := h.stamps[d.ID]
		switch {
		case known && prev == st:
		case !known && window[d.ID] && !h.windowKnown:
			// The newest orders were not followed until now: this one
			// is not new, only newly seen.
		case len(changed) < eventsMaxLoads:
			changed = append(changed, d.ID)
		default:
			if known {
				next[d.ID] = prev // left for the next poll
			}
			continue
		}
		next[d.ID] = st
	}
	// Stamps are kept only for what is followed now, so they stay bounded.
	h.stamps, h.windowKnown = next, recent

	insts, err := h.store.LoadMany(ctx, changed)
	if err != nil {
		return err
	}
	for _, in := range insts {
		if in == nil {
			continue
		}
		data, err := json.Marshal(orders.NewResource(in))
		if err != nil {
			return fmt.Errorf("encoding order %s: %w", in.ID, err)
		}
		f := frame("order", data)
		for _, sub := range subs {
			if sub.ids[in.ID] || (sub.recent && window[in.ID]) {
				sub.send(f)
			}
		}
	}
	return nil
}

// frame is one server-sent event.
func frame(event string, data []byte) []byte {
	return []byte("event: " + event + "\ndata: " + string(data) + "\n\n")
}

// streamEvents is GET /v1/events?recent=&order_id=...: a stream of order
// changes. With order_id (repeatable, up to 100) it follows those orders,
// and the newest orders too with recent=true; without, the newest orders.
func (s *Server) streamEvents(c echo.Context) error {
	ids := c.QueryParams()["order_id"]
	if len(ids) > eventsMaxIDs {
		return validationProblem([]orders.FieldError{{Field: "order_id", Message: "at most 100 order IDs per stream"}})
	}
	for _, id := range ids {
		if !orders.ValidID(id) {
			return validationProblem([]orders.FieldError{{Field: "order_id", Message: "must match [A-Za-z0-9._:-]{1,128}"}})
		}
	}
	recent := len(ids) == 0
	if v := c.QueryParam("recent"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return validationProblem([]orders.FieldError{{Field: "recent", Message: "must be true or false"}})
		}
		recent = b
	}
	ctx := c.Request().Context()
	sub, err := s.dash.hub.subscribe(ctx, recent, ids)
	if err != nil {
		return err
	}
	defer s.dash.hub.unsubscribe(sub)

	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // no proxy buffering
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte("retry: 2000\n\n")); err != nil {
		return nil
	}
	w.Flush()
	keepAlive := time.NewTicker(eventsKeepAlive)
	defer keepAlive.Stop()
	for {
		var b []byte
		select {
		case b = <-sub.ch:
		case <-keepAlive.C:
			b = []byte(": keep-alive\n\n")
		case <-sub.gone:
			return nil
		case <-ctx.Done():
			return nil
		}
		if _, err := w.Write(b); err != nil {
			return nil
		}
		w.Flush()
	}
}

// CloseStreams ends every open event stream (GET /v1/events) and refuses
// new ones. An HTTP server's Shutdown waits for running requests, which a
// stream never ends by itself: call CloseStreams when shutdown begins
// (http.Server.RegisterOnShutdown). Close does it too.
func (s *Server) CloseStreams() { s.dash.close() }
