package audit

import (
	"context"
	"encoding/json"
	"io"
	"time"

	"github.com/redis/go-redis/v9"
)

// WriteJSON audits rdb and writes the report to w as one JSON object, the
// fields of Report, as it goes: each violation as it is found, the counts
// at the end. It flushes w after each batch that wrote something, when w
// has a Flush method (an http.ResponseWriter, a bufio.Writer). Nothing is
// written before the first batch was read, so an error from a Redis that
// cannot be reached leaves w untouched. It returns whether the audit found
// no violation.
func WriteJSON(ctx context.Context, w io.Writer, rdb redis.UniversalClient, cfg Config) (ok bool, err error) {
	cfg = cfg.withDefaults(rdb)
	j := &jsonSink{w: w, checkedAt: cfg.Now.UTC()}
	rep, err := stream(ctx, rdb, cfg, j)
	if err != nil {
		return false, err
	}
	tail, err := json.Marshal(struct {
		Orders              map[string]int `json:"orders"`
		Effects             map[string]int `json:"effects"`
		EarlierIncarnations int            `json:"earlier_incarnations"`
		Flow                *FlowReport    `json:"flow,omitempty"`
	}{rep.Orders, rep.Effects, rep.EarlierIncarnations, rep.Flow})
	if err != nil {
		return false, err
	}
	if err := j.open(); err != nil {
		return false, err
	}
	// The tail object's fields close the report's: drop its opening brace.
	if _, err := io.WriteString(w, "\n],"); err != nil {
		return false, err
	}
	if _, err := w.Write(append(tail[1:], '\n')); err != nil {
		return false, err
	}
	j.flush()
	return j.violations == 0, nil
}

// jsonSink writes violations into a report being written.
type jsonSink struct {
	w          io.Writer
	checkedAt  time.Time
	opened     bool
	violations int
	unflushed  bool
}

// open writes the start of the report, once.
func (j *jsonSink) open() error {
	if j.opened {
		return nil
	}
	j.opened = true
	at, err := json.Marshal(j.checkedAt)
	if err != nil {
		return err
	}
	_, err = io.WriteString(j.w, `{"checked_at":`+string(at)+`,"violations":[`)
	j.unflushed = true
	return err
}

func (j *jsonSink) violation(v Violation) error {
	if err := j.open(); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	sep := "\n"
	if j.violations > 0 {
		sep = ",\n"
	}
	j.violations++
	j.unflushed = true
	_, err = io.WriteString(j.w, sep+string(b))
	return err
}

func (j *jsonSink) checked() error {
	if err := j.open(); err != nil {
		return err
	}
	if j.unflushed {
		j.flush()
	}
	return nil
}

// flush sends what was written on, when the writer can.
func (j *jsonSink) flush() {
	j.unflushed = false
	switch f := j.w.(type) {
	case interface{ Flush() }:
		f.Flush()
	case interface{ Flush() error }:
		_ = f.Flush()
	}
}
