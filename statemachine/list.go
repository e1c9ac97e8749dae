package statemachine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

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
func (s *Store) List(ctx context.Context, q ListQuery) ([]*Instance, string, error) {
	maxScore, afterID, err := decodeCursor(q.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := max(q.Limit, 1)
	index := IndexKey
	if q.DeadLetter {
		index = DeadLetterKey
	}
	var out []*Instance
	// offset skips entries at the cursor's score that were already seen,
	// when a whole batch shares one score.
	var offset int64
	for scanned := 0; scanned < listScanBudget; {
		batch := int64(min(max(limit*2, 50), 500, listScanBudget-scanned))
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: index, Start: maxScore, Stop: "-inf", ByScore: true, Rev: true, Offset: offset, Count: batch,
		}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("reading list index: %w", err)
		}
		scanned += len(zs)
		// Drop what earlier pages returned at the cursor's own score.
		var page []redis.Z
		for _, z := range zs {
			id, _ := z.Member.(string)
			if afterID != "" && scoreString(z) == maxScore && id >= afterID {
				continue
			}
			page = append(page, z)
		}
		if len(page) == 0 {
			if int64(len(zs)) < batch {
				return out, "", nil
			}
			// A full batch of one score, all seen: look further along it.
			offset += int64(len(zs))
			continue
		}
		offset = 0
		cands := page
		if q.filtered() {
			if cands, err = s.matching(ctx, page, q); err != nil {
				return nil, "", err
			}
		}
		for len(cands) > 0 {
			chunk := cands[:min(limit-len(out), len(cands))]
			cands = cands[len(chunk):]
			insts, err := s.loadMany(ctx, chunk)
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
		if int64(len(zs)) < batch {
			return out, "", nil
		}
	}
	return out, encodeCursor(maxScore, afterID), nil
}

// filtered reports whether q selects by anything but its index.
func (q ListQuery) filtered() bool {
	return q.Status != "" || q.State != "" || q.Version != 0 || q.Priority != "" || q.InputField != ""
}

// matching returns the entries of page whose instance matches q's filters,
// reading only the fields they need of each record (and, to filter by
// input, its first history event) in one round trip. Entries whose record
// is gone (expired) are dropped from the index.
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
	var out []redis.Z
	var gone []any
	for i, z := range page {
		v := cmds[i].Val()
		str := func(j int) string { s, _ := v[j].(string); return s }
		status := str(0)
		if status == "" {
			gone = append(gone, z.Member)
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
	s.dropFromIndex(ctx, gone)
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
// whose record is gone (expired) come back nil and are dropped from the
// index.
func (s *Store) loadMany(ctx context.Context, zs []redis.Z) ([]*Instance, error) {
	hs := make([]*redis.MapStringStringCmd, len(zs))
	firsts := make([]*redis.StringCmd, len(zs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			id, _ := z.Member.(string)
			hs[i] = p.HGetAll(ctx, RecordKey(id))
			firsts[i] = p.LIndex(ctx, HistoryKey(id), 0)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("loading instances: %w", err)
	}
	out := make([]*Instance, len(zs))
	var gone []any
	for i, z := range zs {
		id, _ := z.Member.(string)
		m := hs[i].Val()
		if len(m) == 0 {
			gone = append(gone, id)
			continue
		}
		out[i] = decodeInstance(id, m, firsts[i].Val())
	}
	s.dropFromIndex(ctx, gone)
	return out, nil
}

// dropFromIndex removes the entries of expired instances from the list
// index. It is index maintenance only: a failure is left for the next
// reader or the reaper's trim.
func (s *Store) dropFromIndex(ctx context.Context, ids []any) {
	if len(ids) > 0 {
		_ = s.rdb.ZRem(ctx, IndexKey, ids...).Err()
	}
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
