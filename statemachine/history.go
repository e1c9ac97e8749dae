package statemachine

import (
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// The types of history events.
const (
	EventCreated    = "created"
	EventTransition = "transition"
	EventStepFailed = "step_failed"
	EventSignal     = "signal"
	// EventDeadLettered: a step that never gives up exhausted its attempts
	// and waits for an operator (retry or resolve).
	EventDeadLettered = "dead_lettered"
	// EventMigrated: an operator moved the instance to another version of
	// its workflow.
	EventMigrated = "migrated"
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

// encodeEvent writes the stored form of e by hand: it is on every
// transition's path, and reflection-based encoding showed in profiles.
// Detail must be valid JSON (the engine and the API build it with
// encoding/json); it is checked, not re-encoded.
func encodeEvent(e Event) (string, error) {
	if len(e.Detail) > 0 && !json.Valid(e.Detail) {
		return "", errors.New("event detail is not valid JSON")
	}
	b := make([]byte, 0, 160+len(e.Error)+len(e.Detail))
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, e.At.UnixMicro(), 10)
	b = appendJSONField(b, "k", e.Type)
	b = appendJSONField(b, "e", e.Event)
	b = appendJSONField(b, "f", e.From)
	b = appendJSONField(b, "s", e.To)
	b = appendJSONField(b, "p", e.Step)
	if e.Attempt != 0 {
		b = append(b, `,"n":`...)
		b = strconv.AppendInt(b, int64(e.Attempt), 10)
	}
	b = appendJSONField(b, "x", e.Error)
	if len(e.Detail) > 0 {
		b = append(b, `,"d":`...)
		b = append(b, e.Detail...)
	}
	b = append(b, '}')
	return unsafe.String(unsafe.SliceData(b), len(b)), nil // b is never written again
}

// appendJSONField appends ,"name":"value" when value is not empty.
func appendJSONField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

// appendJSONString appends s as a JSON string, escaping what JSON requires
// and replacing invalid UTF-8 with U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
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
