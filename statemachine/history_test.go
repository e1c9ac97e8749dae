package statemachine

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzEncodeEvent checks the hand-written event encoder against
// encoding/json: the stored form must be valid JSON that decodes back to the
// same event, for any strings.
func FuzzEncodeEvent(f *testing.F) {
	f.Add("transition", "charged", "charging", "shipping", "charge", 2, "payment charge: 503", int64(1764150000123456))
	f.Add("step_failed", "", "", "", "ship", 1, "quote \" backslash \\ tab \t nul \x00 é 世界 \xff", int64(0))
	f.Add("", "", "", "", "", 0, "\u2028\u2029<>&", int64(-5))
	f.Fuzz(func(t *testing.T, typ, event, from, to, step string, attempt int, errText string, at int64) {
		e := Event{At: time.UnixMicro(at).UTC(), Type: typ, Event: event, From: from, To: to,
			Step: step, Attempt: attempt, Error: errText, Detail: json.RawMessage(`{"signal":"cancel"}`)}
		s, err := encodeEvent(e)
		require.NoError(t, err)
		require.True(t, json.Valid([]byte(s)), "invalid JSON: %q", s)
		got, err := decodeEvent(s)
		require.NoError(t, err)
		// encoding/json replaces invalid UTF-8 the same way.
		want, err := json.Marshal(storedEvent{Type: typ, Event: event, From: from, To: to, Step: step, Error: errText})
		require.NoError(t, err)
		var norm storedEvent
		require.NoError(t, json.Unmarshal(want, &norm))
		require.Equal(t, norm.Type, got.Type)
		require.Equal(t, norm.Event, got.Event)
		require.Equal(t, norm.From, got.From)
		require.Equal(t, norm.To, got.To)
		require.Equal(t, norm.Step, got.Step)
		require.Equal(t, norm.Error, got.Error)
		require.Equal(t, attempt, got.Attempt)
		require.Equal(t, e.At, got.At)
		require.JSONEq(t, `{"signal":"cancel"}`, string(got.Detail))
	})
}

func TestEncodeEventRefusesInvalidDetail(t *testing.T) {
	t.Parallel()
	_, err := encodeEvent(Event{Type: EventCreated, Detail: json.RawMessage(`{"a":`)})
	require.Error(t, err)
}

// BenchmarkEncodeEvent compares the hand-written event encoder with the
// encoding/json one it replaced (benchstat -col /impl).
func BenchmarkEncodeEvent(b *testing.B) {
	e := Event{At: time.UnixMicro(1764150000123456), Type: EventTransition, Event: "charged",
		From: OrderCharging, To: OrderShipping, Step: StepCharge, Attempt: 1}
	b.Run("impl=json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(storedEvent{At: e.At.UnixMicro(), Type: e.Type, Event: e.Event, From: e.From,
				To: e.To, Step: e.Step, Attempt: e.Attempt})
		}
	})
	b.Run("impl=manual", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = encodeEvent(e)
		}
	})
}
