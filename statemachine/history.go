package statemachine

import (
	"encoding/json"
	"time"
)

// The types of history events.
const (
	EventCreated    = "created"
	EventTransition = "transition"
	EventStepFailed = "step_failed"
	EventSignal     = "signal"
)

// Event is one entry of an instance's append-only history.
type Event struct {
	// Seq numbers events from 1 with no gaps; it is the position in the
	// history list.
	Seq  int       `json:"seq"`
	At   time.Time `json:"at"`
	Type string    `json:"type"`
	// Event is the FSM event a transition fired, or the signal's name.
	Event   string          `json:"event,omitempty"`
	From    string          `json:"from,omitempty"`
	To      string          `json:"to,omitempty"`
	Step    string          `json:"step,omitempty"`
	Attempt int             `json:"attempt,omitempty"`
	Error   string          `json:"error,omitempty"`
	Detail  json.RawMessage `json:"detail,omitempty"`
}

// storedEvent is the compact form kept in Redis.
type storedEvent struct {
	At      int64           `json:"t"`
	Type    string          `json:"k"`
	Event   string          `json:"e,omitempty"`
	From    string          `json:"f,omitempty"`
	To      string          `json:"s,omitempty"`
	Step    string          `json:"p,omitempty"`
	Attempt int             `json:"n,omitempty"`
	Error   string          `json:"x,omitempty"`
	Detail  json.RawMessage `json:"d,omitempty"`
}

func encodeEvent(e Event) (string, error) {
	b, err := json.Marshal(storedEvent{
		At: e.At.UnixMicro(), Type: e.Type, Event: e.Event, From: e.From, To: e.To,
		Step: e.Step, Attempt: e.Attempt, Error: e.Error, Detail: e.Detail,
	})
	return string(b), err
}

func decodeEvent(s string) (Event, error) {
	var se storedEvent
	if err := json.Unmarshal([]byte(s), &se); err != nil {
		return Event{}, err
	}
	return Event{
		At: time.UnixMicro(se.At).UTC(), Type: se.Type, Event: se.Event, From: se.From, To: se.To,
		Step: se.Step, Attempt: se.Attempt, Error: se.Error, Detail: se.Detail,
	}, nil
}
