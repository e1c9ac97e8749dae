package statemachine

// Every Redis key orderflow writes is built here.
//
// The keys of one instance share the hash tag {o:<id>}, so a whole instance
// sits in one Redis Cluster slot and every per-instance script touches one
// slot. The global indexes (the list index, the due index, the dead-letter
// index, the wake lists and the finished channel) are split into shards
// (see Shards): with one shard they are the names below; with N they carry
// the shard's hash tag, of:due:{s<k>[.<j>]}, of:idx:created:{...},
// of:idx:dead:{...}, of:wake:{...}:<queue>, of:finished:{...}, all of shard
// k in one slot. They are written outside the per-instance scripts, and the
// scripts that touch them (due_claim.lua) touch one shard.
//
// Layout of one order, and the keys beside it:
//
//	of:{o:<id>}          hash: state, revision, lease, attempts, results
//	of:{o:<id>}:h        list: the history, oldest first
//	of:{o:<id>}:n        string: incarnations under the ID
//	of:idem:{<hash>}     hash: an Idempotency-Key's binding
//	of:meta:shards       string: the number of index shards (ResolveShards)
//	asynq:{<queue>}:...  asynq's own keys, one slot per queue

// Prefix starts every key orderflow owns. asynq's keys start with "asynq:".
const Prefix = "of:"

// tag returns the hash tag of an instance.
func tag(id string) string { return "{o:" + id + "}" }

// RecordKey is the hash holding an instance's state, revision, lease,
// attempts, flags and step results.
func RecordKey(id string) string { return Prefix + tag(id) }

// HistoryKey is the list of an instance's events, oldest first. Element 0 is
// the "created" event, which carries the instance's input.
func HistoryKey(id string) string { return Prefix + tag(id) + ":h" }

// IncarnationKey counts the instances created under an ID. It outlives the
// record by StoreConfig.IncarnationMemory, so that an ID reused after its
// instance expired gets provider keys of its own (see Instance.KeyPrefix).
func IncarnationKey(id string) string { return Prefix + tag(id) + ":n" }

// IndexKey is the sorted set of accepted instances scored by creation time in
// microseconds; the order list reads it newest first.
const IndexKey = Prefix + "idx:created"

// DueKey is the sorted set of unfinished instances scored by the time (Unix
// ms) at which the reaper must look at them if nothing else has: a lease
// expiry, a retry time, or a pickup deadline.
const DueKey = Prefix + "due"

// DeadLetterKey is the sorted set of instances with a step parked for an
// operator, scored by when it was parked (Unix ms).
const DeadLetterKey = Prefix + "idx:dead"

// WakePrefix starts the wake lists' keys.
const WakePrefix = Prefix + "wake:"

// WakeKey is the list through which instances are announced to the workers
// serving queue, so that a worker with spare capacity claims them at once
// instead of waiting for asynq's next poll; asynq tasks remain the durable
// path (see engine.RunWake).
func WakeKey(queue string) string { return WakePrefix + queue }

// FinishedChannel is the pub/sub channel on which an instance's ID is
// published when it finishes, if a client waits for it (see Store.Watch).
const FinishedChannel = Prefix + "finished"

// IdempotencyKey is the record of one client Idempotency-Key. The key is
// hashed so that any printable header value makes a safe key name.
func IdempotencyKey(keyHash string) string { return Prefix + "idem:{" + keyHash + "}" }
