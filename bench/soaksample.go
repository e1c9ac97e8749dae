package bench

import (
	"context"
	"time"
)

// soakSample is what the soak reads every SampleEvery.
type soakSample struct {
	at         time.Duration // from the load's begin
	dueEntries int64
	dueLag     time.Duration
	usedMemory int64
	finished   int     // orders announced finished by then
	rss        []int64 // per worker column; 0 when unreadable
	cpu        cpuCounters
}

// sample reads the due index, Redis's memory and the workers' RSS every
// SampleEvery until done is closed.
func (s *soak) sample(ctx context.Context, done <-chan struct{}) {
	begin := s.loop.beganAt()
	t := time.NewTicker(s.cfg.SampleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-done:
			return
		case <-t.C:
		}
		sm := soakSample{at: time.Since(begin), finished: s.loop.finishedCount()}
		n, oldest, err := s.store.DueStats(ctx)
		if err != nil {
			continue
		}
		sm.dueEntries = n
		if now := time.Now(); !oldest.IsZero() && oldest.Before(now) {
			sm.dueLag = now.Sub(oldest)
		}
		if sm.usedMemory, err = usedMemory(ctx, s.h.rdb); err != nil {
			continue
		}
		pids := s.pids()
		for _, pid := range pids {
			rss, _ := rssBytes(pid)
			sm.rss = append(sm.rss, rss)
		}
		sm.cpu = s.h.readCPU(ctx, pids)
		s.mu.Lock()
		s.samples = append(s.samples, sm)
		s.mu.Unlock()
	}
}

// rows joins the latency of the orders scheduled in each interval with the
// samples taken in it.
func (s *soak) rows(ts []orderTiming, mem0 int64) []SoakRow {
	s.mu.Lock()
	samples := append([]soakSample(nil), s.samples...)
	s.mu.Unlock()
	var out []SoakRow
	for _, lr := range latencyRows(ts, s.cfg.Interval) {
		row := SoakRow{LatencyRow: lr}
		var prev, last *soakSample
		for i := range samples {
			sm := &samples[i]
			if sm.at < lr.Start {
				prev = sm
			}
			if sm.at < lr.Start || sm.at >= lr.Start+s.cfg.Interval {
				continue
			}
			if prev == nil {
				prev = sm
			}
			row.DueEntries = max(row.DueEntries, sm.dueEntries)
			row.DueLag = max(row.DueLag, sm.dueLag)
			// Each column's last reading: a killed worker is gone until
			// its replacement runs.
			if row.RSS == nil {
				row.RSS = make([]int64, len(sm.rss))
			}
			for i, v := range sm.rss {
				if v > 0 && i < len(row.RSS) {
					row.RSS[i] = v
				}
			}
			last = sm
		}
		if last != nil {
			row.CPU = shareBetween(prev.cpu, last.cpu)
			if last.finished > 0 {
				row.BytesPerOrder = float64(last.usedMemory-mem0) / float64(last.finished)
			}
		}
		out = append(out, row)
	}
	return out
}
