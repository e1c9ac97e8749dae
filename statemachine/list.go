package statemachine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ListQuery selects instances for List, newest first.
type ListQuery struct {
	// Status and State filter when set.
	Status Status
	State  string
	// Version and Priority filter when set: the workflow version the
	// instance is pinned to, and its priority (normal matches a record
	// without one).
	Version  int
	Priority Priority
	// InputField and InputValue, when InputField is set, keep the
	// instances whose input (a JSON object) has that top-level string
	// field with that value, such as an order's customer_id. It reads each
	// examined entry's first history event, so it costs more than the
	// other filters; the scan budget bounds it all the same.
	InputField, InputValue string
	// Limit is the page size, 1..500.
	Limit int
	// Cursor continues a previous page; empty starts from the newest.
	Cursor string
	// DeadLetter lists only instances with a step parked for an operator,
	// the most recently parked first.
	DeadLetter bool
}

// ErrBadCursor is returned for a cursor List did not issue.
var ErrBadCursor = errors.New("invalid cursor")

// listScanBudget bounds how many index entries one call of List examines.
// A filtered page whose matches are rare may then hold fewer than Limit
// items, with a next cursor to go on from: the cost of a call stays bounded
// however rare the matches are.
const listScanBudget = 1000

// List returns one page of accepted instances, newest first, and the cursor
// of the next page ("" at the end). With a filter it reads only the status
// and state of the entries it examines (HMGET), and loads whole records only
// for the matches.
//
// The index is sharded: List reads every shard from the cursor on, in one
// round trip, and merges them. Entries are ordered by (creation time, ID),
// both descending, across shards; the cursor is the last entry returned, so
// it means the same whichever shard that entry came from, and a page never
// skips or repeats an entry that was in the index when the first page was
// read.
func (s *Store) List(ctx context.Context, q ListQuery) ([]*Instance, string, error) {
	maxScore, afterID, err := decodeCursor(q.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := max(q.Limit, 1)
	index := s.shards.IndexKey
	if q.DeadLetter {
		index = s.shards.DeadLetterKey
	}
	var out []*Instance
	r := newMergeReader(s, index, limit)
	for scanned := 0; scanned < listScanBudget; {
		page, more, n, err := r.next(ctx, maxScore, afterID, listScanBudget-scanned)
		if err != nil {
			return nil, "", err
		}
		scanned += n
		if len(page) == 0 {
			return out, "", nil
		}
		cands := page
		if q.filtered() {
			if cands, err = s.matching(ctx, page, q); err != nil {
				return nil, "", err
			}
		}
		for len(cands) > 0 {
			chunk := cands[:min(limit-len(out), len(cands))]
			cands = cands[len(chunk):]
			insts, err := s.loadMany(ctx, chunk, !q.DeadLetter)
			if err != nil {
				return nil, "", err
			}
			for _, in := range insts {
				if in != nil {
					out = append(out, in)
				}
			}
			if len(out) == limit {
				last := chunk[len(chunk)-1]
				return out, encodeCursor(scoreString(last), last.Member.(string)), nil
			}
		}
		last := page[len(page)-1]
		maxScore, afterID = scoreString(last), last.Member.(string)
		if !more {
			return out, "", nil
		}
	}
	return out, encodeCursor(maxScore, afterID), nil
}

// mergeReader reads the shards of an index newest first from a cursor and
// merges them.
type mergeReader struct {
	s     *Store
	index func(k int) string
	batch int64
	// offsets skip, per shard, entries at the cursor's own score that were
	// already seen, when a whole batch shares that score.
	offsets  []int64
	offsetAt string
}

func newMergeReader(s *Store, index func(k int) string, limit int) *mergeReader {
	n := s.shards.N()
	batch := int64(min(max(limit*2, 50), 500))
	if n > 1 {
		// A shard holds about 1/n of a page's entries.
		batch = int64(min(max(limit*2/n+8, 16), 500))
	}
	return &mergeReader{s: s, index: index, batch: batch, offsets: make([]int64, n)}
}

// next returns the entries after the cursor (maxScore, afterID), newest
// first, that are certain to come before any entry not read yet: every
// entry of the shards read to their end, and those of the other shards up
// to the earliest of their last entries read. more says whether entries
// may follow; n is how many index entries were read (at most budget per
// shard).
func (r *mergeReader) next(ctx context.Context, maxScore, afterID string, budget int) (page []redis.Z, more bool, n int, err error) {
	if r.offsetAt != maxScore {
		clear(r.offsets)
		r.offsetAt = maxScore
	}
	shards := r.s.shards.N()
	got := make([][]redis.Z, shards)
	full := make([]bool, shards)
	todo := make([]int, shards)
	for k := range todo {
		todo[k] = k
	}
	for len(todo) > 0 {
		batch := min(r.batch, int64(max(budget, 1)))
		cmds := make([]*redis.ZSliceCmd, len(todo))
		if _, err := r.s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range todo {
				cmds[i] = p.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
					Key: r.index(k), Start: maxScore, Stop: "-inf", ByScore: true, Rev: true, Offset: r.offsets[k], Count: batch,
				})
			}
			return nil
		}); err != nil {
			return nil, false, n, fmt.Errorf("reading list index: %w", err)
		}
		var again []int
		for i, k := range todo {
			zs := cmds[i].Val()
			n += len(zs)
			full[k] = int64(len(zs)) == batch
			// Drop what earlier pages returned at the cursor's own score.
			var fresh []redis.Z
			for _, z := range zs {
				id, _ := z.Member.(string)
				if afterID != "" && scoreString(z) == maxScore && id >= afterID {
					continue
				}
				fresh = append(fresh, z)
			}
			if len(fresh) == 0 && full[k] {
				// A full batch of one score, all seen: look further along it.
				r.offsets[k] += int64(len(zs))
				again = append(again, k)
				continue
			}
			got[k] = fresh
		}
		todo = again
	}
	// The horizon: a shard that may hold more can hold entries that come
	// before those of other shards after its last one read.
	var horizon *redis.Z
	for k := range shards {
		if full[k] && len(got[k]) > 0 {
			last := got[k][len(got[k])-1]
			if horizon == nil || newerThan(last, *horizon) {
				horizon = &last
			}
		}
	}
	for k := range shards {
		for _, z := range got[k] {
			if horizon == nil || !newerThan(*horizon, z) {
				page = append(page, z)
			}
		}
		more = more || full[k]
	}
	slices.SortFunc(page, func(a, b redis.Z) int {
		switch {
		case newerThan(a, b):
			return -1
		case newerThan(b, a):
			return 1
		}
		return 0
	})
	return page, more, n, nil
}

// newerThan reports whether index entry a comes before b in List's order:
// a later creation time, or the same one and a greater ID.
func newerThan(a, b redis.Z) bool {
	if a.Score != b.Score {
		return a.Score > b.Score
	}
	ai, _ := a.Member.(string)
	bi, _ := b.Member.(string)
	return ai > bi
}

// filtered reports whether q selects by anything but its index.
func (q ListQuery) filtered() bool {
	return q.Status != "" || q.State != "" || q.Version != 0 || q.Priority != "" || q.InputField != ""
}

// matching returns the entries of page whose instance matches q's filters,
// reading only the fields they need of each record (and, to filter by
// input, its first history event) in one round trip. Entries whose record
// is gone are dropped from the index (dropFromIndex).
func (s *Store) matching(ctx context.Context, page []redis.Z, q ListQuery) ([]redis.Z, error) {
	cmds := make([]*redis.SliceCmd, len(page))
	firsts := make([]*redis.StringCmd, len(page))
	sent, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range page {
			id := z.Member.(string)
			cmds[i] = p.HMGet(ctx, RecordKey(id), fieldStatus, fieldState, fieldVersion, fieldPriority)
			if q.InputField != "" {
				firsts[i] = p.LIndex(ctx, HistoryKey(id), 0)
			}
		}
		return nil
	})
	if err := firstErr(sent, err); err != nil {
		return nil, fmt.Errorf("filtering instances: %w", err)
	}
	var out, gone []redis.Z
	for i, z := range page {
		v := cmds[i].Val()
		str := func(j int) string { s, _ := v[j].(string); return s }
		status := str(0)
		if status == "" {
			gone = append(gone, z)
			continue
		}
		prio, _ := ParsePriority(str(3))
		switch {
		case q.Status != "" && Status(status) != q.Status,
			q.State != "" && str(1) != q.State,
			q.Version != 0 && atoi(str(2)) != q.Version,
			q.Priority != "" && prio != q.Priority,
			q.InputField != "" && !inputHas(firsts[i].Val(), q.InputField, q.InputValue):
			continue
		}
		out = append(out, z)
	}
	s.dropFromIndex(ctx, gone, !q.DeadLetter)
	return out, nil
}

// inputHas reports whether the input kept in a stored "created" event has
// the top-level string field with value.
func inputHas(created, field, value string) bool {
	ev, err := decodeEvent(created)
	if err != nil {
		return false
	}
	var in map[string]json.RawMessage
	if json.Unmarshal(ev.Detail, &in) != nil {
		return false
	}
	var got string
	return json.Unmarshal(in[field], &got) == nil && got == value
}

// scoreString is an index entry's score (creation time, µs) as the cursor
// holds it.
func scoreString(z redis.Z) string { return strconv.FormatInt(int64(z.Score), 10) }

// loadMany reads the instances of index entries in one round trip; entries
// whose record is gone come back nil and are dropped from the index
// (dropFromIndex; byCreation says the entries' scores are creation times).
func (s *Store) loadMany(ctx context.Context, zs []redis.Z, byCreation bool) ([]*Instance, error) {
	out, gone, err := s.readMany(ctx, zs)
	if err != nil {
		return nil, err
	}
	s.dropFromIndex(ctx, gone, byCreation)
	return out, nil
}

// readMany reads the instances of entries in one round trip; it returns
// nil for those whose record does not exist, and those entries in gone.
func (s *Store) readMany(ctx context.Context, zs []redis.Z) (out []*Instance, gone []redis.Z, err error) {
	hs := make([]*redis.MapStringStringCmd, len(zs))
	firsts := make([]*redis.StringCmd, len(zs))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			id, _ := z.Member.(string)
			hs[i] = p.HGetAll(ctx, RecordKey(id))
			firsts[i] = p.LIndex(ctx, HistoryKey(id), 0)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("loading instances: %w", err)
	}
	out = make([]*Instance, len(zs))
	for i, z := range zs {
		id, _ := z.Member.(string)
		m := hs[i].Val()
		if len(m) == 0 {
			gone = append(gone, z)
			continue
		}
		out[i] = decodeInstance(id, m, firsts[i].Val())
	}
	return out, gone, nil
}

// orphanGrace is how long the list keeps an entry whose record does not
// exist, counted from the entry's creation time: Create writes the index
// entries before the record (see Create), so a young entry without a
// record may be one whose record is on its way. Older ones are entries of
// expired instances, or of a Create that never finished.
const orphanGrace = time.Minute

// dropFromIndex removes from the list index the entries whose record does
// not exist, except, when their scores are creation times (byCreation),
// those younger than orphanGrace. It is index maintenance only: a failure
// is left for the next reader or the reaper's trim.
func (s *Store) dropFromIndex(ctx context.Context, gone []redis.Z, byCreation bool) {
	if len(gone) == 0 {
		return
	}
	young := s.Now().Add(-orphanGrace).UnixMicro()
	byShard := map[int][]any{}
	for _, z := range gone {
		if byCreation && int64(z.Score) > young {
			continue
		}
		id, _ := z.Member.(string)
		k := s.shards.Of(id)
		byShard[k] = append(byShard[k], id)
	}
	if len(byShard) == 0 {
		return
	}
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, ids := range byShard {
			p.ZRem(ctx, s.shards.IndexKey(k), ids...)
		}
		return nil
	})
}

func encodeCursor(score, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(score + "|" + id))
}

func decodeCursor(c string) (maxScore, afterID string, err error) {
	if c == "" {
		return "+inf", "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return "", "", ErrBadCursor
	}
	score, id, ok := strings.Cut(string(raw), "|")
	if !ok || id == "" {
		return "", "", ErrBadCursor
	}
	if _, err := strconv.ParseInt(score, 10, 64); err != nil {
		return "", "", ErrBadCursor
	}
	return score, id, nil
}
