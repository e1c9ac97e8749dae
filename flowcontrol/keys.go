package flowcontrol

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/orderflow/orderflow/statemachine"
)

// Every Redis key of flow control is built here. Each starts with
// "of:flow:" and carries a hash tag, so that every script touches one
// Redis Cluster slot:
//
//	of:flow:{<provider>}:state      hash: paused, hold_until, the breaker's state and times,
//	                                and the limits the workers were started with (cfg_*)
//	of:flow:{<provider>}:inflight   zset: attempt ID -> when its mark lapses (ms)
//	of:flow:{<provider>}:stats      hash: outcome counts per bucket of the window
//	of:flow:{<provider>}:rate       string: the rate limit's GCRA state (redis_rate)
//	of:flow:{<provider>}:ramp       string: the recovery ramp's GCRA state
//	of:flow:{<provider>}:sched      string: the next free place in the line of rate-limited waiters (ms)
//	of:flow:{<provider>}:places     zset: rate-limited waiting instance -> its place in that line (ms)
//	of:flow:{c:<step>:<field>:<value>}:h   zset: holder instance -> lease end (ms)
//	of:flow:{c:<step>:<field>:<value>}:n   hash: holder instance -> attempt ID
//	of:flow:{c:<step>:<field>:<value>}:w   zset: waiting instance -> first arrival (µs)
//	of:flow:{c:<step>:<field>:<value>}:d   zset: waiting instance -> when its wait lapses (ms)
//	of:flow:waiting                 zset: the tags of lines with waiters -> waits counted
//	of:flow:janitor                 string: the worker whose turn it is to sweep the lines, and until when
//
// Every key but the provider's state expires when left alone.
const keyPrefix = statemachine.Prefix + "flow:"

// providerKeys names the keys of one provider.
type providerKeys struct{ state, inflight, stats, rate, ramp, sched, places string }

func keysOfProvider(p string) providerKeys {
	base := keyPrefix + "{" + p + "}:"
	return providerKeys{state: base + "state", inflight: base + "inflight", stats: base + "stats", rate: base + "rate", ramp: base + "ramp",
		sched: base + "sched", places: base + "places"}
}

// slotKeys names the keys of one line: one value of one concurrency limit.
type slotKeys struct {
	tag                                 string
	holders, nonces, waiters, deadlines string
}

// slotTag is the hash tag of a line. A value too long for a key name, or
// holding braces (which would end the tag early), is hashed.
func slotTag(l Limit, value string) string {
	if len(value) > 64 || strings.ContainsAny(value, "{}") {
		sum := sha256.Sum256([]byte(value))
		value = "#" + hex.EncodeToString(sum[:12])
	}
	return "c:" + l.Step + ":" + l.Field + ":" + value
}

func keysOfTag(tag string) slotKeys {
	base := keyPrefix + "{" + tag + "}:"
	return slotKeys{tag: tag, holders: base + "h", nonces: base + "n", waiters: base + "w", deadlines: base + "d"}
}

// limitOfTag returns the step and field of a line's tag.
func limitOfTag(tag string) (step, field string, ok bool) {
	rest, ok := strings.CutPrefix(tag, "c:")
	if !ok {
		return "", "", false
	}
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// waitingKey indexes the lines that have waiters, for the janitor.
const waitingKey = keyPrefix + "waiting"

// janitorKey holds the turn of the worker that sweeps the lines, so that
// one does.
const janitorKey = keyPrefix + "janitor"
