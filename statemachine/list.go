package statemachine

import (
	"context"
	"encoding/base64"
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
	// Limit is the page size, 1..500.
	Limit int
	// Cursor continues a previous page; empty starts from the newest.
	Cursor string
}

// ErrBadCursor is returned for a cursor List did not issue.
var ErrBadCursor = errors.New("invalid cursor")

// listScanBudget bounds how many index entries one page examines when it
// filters; a page may then hold fewer than Limit items and a next cursor.
const listScanBudget = 5000

// List returns one page of accepted instances, newest first, and the cursor
// of the next page ("" at the end).
func (s *Store) List(ctx context.Context, q ListQuery) ([]*Instance, string, error) {
	maxScore, afterID, err := decodeCursor(q.Cursor)
	if err != nil {
		return nil, "", err
	}
	limit := max(q.Limit, 1)
	var out []*Instance
	scanned := 0
	batch := int64(min(max(limit*2, 50), 500))
	// offset skips entries at the cursor's score that were already seen,
	// when a whole batch shares one score.
	var offset int64
	for scanned < listScanBudget {
		zs, err := s.rdb.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: IndexKey, Start: maxScore, Stop: "-inf", ByScore: true, Rev: true, Offset: offset, Count: batch,
		}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("reading list index: %w", err)
		}
		// Drop what earlier pages returned at the cursor's own score.
		var page []redis.Z
		for _, z := range zs {
			id, _ := z.Member.(string)
			if afterID != "" && strconv.FormatInt(int64(z.Score), 10) == maxScore && id >= afterID {
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
			scanned += len(zs)
			continue
		}
		offset = 0
		insts, err := s.loadMany(ctx, page)
		if err != nil {
			return nil, "", err
		}
		for i, in := range insts {
			scanned++
			z := page[i]
			id, _ := z.Member.(string)
			maxScore, afterID = strconv.FormatInt(int64(z.Score), 10), id
			if in == nil || (q.Status != "" && in.Status != q.Status) || (q.State != "" && in.State != q.State) {
				continue
			}
			out = append(out, in)
			if len(out) == limit {
				return out, encodeCursor(maxScore, afterID), nil
			}
		}
		if int64(len(zs)) < batch {
			return out, "", nil
		}
	}
	return out, encodeCursor(maxScore, afterID), nil
}

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
	if len(gone) > 0 {
		// Index maintenance only: expired instances leave the list.
		_ = s.rdb.ZRem(ctx, IndexKey, gone...).Err()
	}
	return out, nil
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
