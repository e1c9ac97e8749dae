package statemachine

import (
	"fmt"
	"strings"
)

// Priority orders instances' steps under a backlog. It is carried by the
// queue a step's task goes to: each queue has a high and a low variant
// beside its own (normal) one, which workers serve with weights, so that
// higher priorities run first without starving the lower ones.
type Priority string

// The priorities.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Priorities lists the priorities, highest first.
var Priorities = []Priority{PriorityHigh, PriorityNormal, PriorityLow}

// ParsePriority reads "high", "normal" or "low"; "" is normal.
func ParsePriority(s string) (Priority, error) {
	switch p := Priority(s); p {
	case "":
		return PriorityNormal, nil
	case PriorityHigh, PriorityNormal, PriorityLow:
		return p, nil
	}
	return "", fmt.Errorf("priority %q: want high, normal or low", s)
}

// Weight is the share of a worker's attention a priority's queues get,
// relative to the others of the same queue: 3, 2 and 1.
func (p Priority) Weight() int {
	switch p {
	case PriorityHigh:
		return 3
	case PriorityLow:
		return 1
	}
	return 2
}

// prioritySep separates a queue's name from its priority variant.
const prioritySep = ":"

// QueueName is the queue a step of base's runs on at priority p: base
// itself for normal, "base:high" and "base:low" otherwise.
func QueueName(base string, p Priority) string {
	if p == "" || p == PriorityNormal {
		return base
	}
	return base + prioritySep + string(p)
}

// SplitQueue is the inverse of QueueName.
func SplitQueue(name string) (base string, p Priority) {
	if b, v, ok := strings.Cut(name, prioritySep); ok {
		if pp, err := ParsePriority(v); err == nil {
			return b, pp
		}
	}
	return name, PriorityNormal
}

// WeightedQueues expands a worker's queues and weights into every priority
// variant, each queue's weight multiplied by its priority's.
func WeightedQueues(base map[string]int) map[string]int {
	out := make(map[string]int, 3*len(base))
	for q, w := range base {
		for _, p := range Priorities {
			out[QueueName(q, p)] = max(w, 1) * p.Weight()
		}
	}
	return out
}
