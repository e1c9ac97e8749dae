package statemachine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Shards is the layout of the global indexes: the due index, the list
// index, the dead-letter index, the wake lists and the finished channel are
// each split into N shards, and an instance's entries live in the shard
// Of(its ID). Every key of shard k carries the same hash tag, so a shard is
// one Redis Cluster slot: the slots of the N tags are spread evenly over
// the 16384 (shard k sits at slot k·16384/N), so that a cluster whose
// masters hold equal slot ranges holds equal numbers of shards.
//
// With N = 1 (a single node) the keys are the unsharded names (DueKey,
// IndexKey, ...), so a single Redis keeps the layout it always had.
type Shards struct {
	tags []string // nil for N = 1
}

// clusterSlots is the number of Redis Cluster hash slots.
const clusterSlots = 16384

// MaxShards bounds the number of shards.
const MaxShards = 1024

// DefaultClusterShards is the number of shards on a Redis Cluster unless
// configured.
const DefaultClusterShards = 16

// NewShards returns the layout of n shards; n < 1 is 1, and n is at most
// MaxShards.
func NewShards(n int) Shards {
	n = min(max(n, 1), MaxShards)
	if n == 1 {
		return Shards{}
	}
	return Shards{tags: shardTags(n)}
}

// DefaultShards is the number of shards for rdb when none is configured:
// DefaultClusterShards on a Redis Cluster, 1 otherwise.
func DefaultShards(rdb redis.UniversalClient) int {
	if _, ok := rdb.(*redis.ClusterClient); ok {
		return DefaultClusterShards
	}
	return 1
}

// N returns the number of shards.
func (s Shards) N() int { return max(len(s.tags), 1) }

// Of returns the shard of an instance.
func (s Shards) Of(id string) int {
	if len(s.tags) == 0 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % uint32(len(s.tags)))
}

// suffix returns ":{tag}" of shard k, or "" with one shard.
func (s Shards) suffix(k int) string {
	if len(s.tags) == 0 {
		return ""
	}
	return ":{" + s.tags[k] + "}"
}

// DueKey returns the due index of shard k (DueKey with one shard).
func (s Shards) DueKey(k int) string { return DueKey + s.suffix(k) }

// IndexKey returns the list index of shard k (IndexKey with one shard).
func (s Shards) IndexKey(k int) string { return IndexKey + s.suffix(k) }

// DeadLetterKey returns the dead-letter index of shard k (DeadLetterKey
// with one shard).
func (s Shards) DeadLetterKey(k int) string { return DeadLetterKey + s.suffix(k) }

// WakeKey returns queue's wake list in shard k (WakeKey(queue) with one
// shard). The shard's tag comes first, so that one BLPOP can read the wake
// lists of several queues in one shard.
func (s Shards) WakeKey(k int, queue string) string {
	if len(s.tags) == 0 {
		return WakeKey(queue)
	}
	return WakePrefix + "{" + s.tags[k] + "}:" + queue
}

// FinishedChannel returns the channel of shard k on which finished
// instances are announced (FinishedChannel with one shard; a sharded
// channel, SPUBLISH and SSUBSCRIBE, with several).
func (s Shards) FinishedChannel(k int) string { return FinishedChannel + s.suffix(k) }

// Keys returns key(k) for every shard.
func (s Shards) Keys(key func(k int) string) []string {
	out := make([]string, s.N())
	for k := range out {
		out[k] = key(k)
	}
	return out
}

// QueueOfWakeKey returns the queue of a wake list's key.
func QueueOfWakeKey(key string) string {
	q := strings.TrimPrefix(key, WakePrefix)
	if strings.HasPrefix(q, "{") {
		if _, rest, ok := strings.Cut(q, "}:"); ok {
			return rest
		}
	}
	return q
}

var (
	tagsMu    sync.Mutex
	tagsCache = map[int][]string{}
)

// shardTags returns the hash tags of n shards: tag k is the first of
// "s<k>", "s<k>.1", "s<k>.2", ... whose slot is k·16384/n.
func shardTags(n int) []string {
	tagsMu.Lock()
	defer tagsMu.Unlock()
	if t, ok := tagsCache[n]; ok {
		return t
	}
	tags := make([]string, n)
	for k := range n {
		want := uint16(k * clusterSlots / n)
		base := "s" + strconv.Itoa(k)
		tag := base
		for j := 1; crc16(tag)%clusterSlots != want; j++ {
			tag = base + "." + strconv.Itoa(j)
		}
		tags[k] = tag
	}
	tagsCache[n] = tags
	return tags
}

// SlotOf returns the Redis Cluster slot of a key (CLUSTER KEYSLOT).
func SlotOf(key string) int {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % clusterSlots)
}

// ShardsKey holds the number of shards the indexes of a Redis are split
// into, written by the first process that uses it (see ResolveShards).
const ShardsKey = Prefix + "meta:shards"

// ErrShardsMismatch is returned by ResolveShards when the configured number
// of shards differs from the one the Redis already uses.
var ErrShardsMismatch = errors.New("the configured number of index shards differs from the one this Redis uses")

// ResolveShards returns the number of shards the processes on rdb use: the
// one recorded in ShardsKey, or else want (0: DefaultShards), which it then
// records. A want other than the recorded one is ErrShardsMismatch: every
// process must find every index entry, so the number never changes under a
// running deployment.
func ResolveShards(ctx context.Context, rdb redis.UniversalClient, want int) (int, error) {
	if want < 0 || want > MaxShards {
		return 0, fmt.Errorf("index shards must be 0 (automatic) to %d, got %d", MaxShards, want)
	}
	n := want
	if n == 0 {
		n = DefaultShards(rdb)
	}
	if err := rdb.SetNX(ctx, ShardsKey, n, 0).Err(); err != nil {
		return 0, fmt.Errorf("recording the index shards: %w", err)
	}
	v, err := rdb.Get(ctx, ShardsKey).Int()
	if err != nil {
		return 0, fmt.Errorf("reading the index shards: %w", err)
	}
	if want != 0 && v != want {
		return 0, fmt.Errorf("%w: configured %d, this Redis uses %d", ErrShardsMismatch, want, v)
	}
	return v, nil
}
