package providers

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":             0,
		"2":            2 * time.Second,
		" 120 ":        2 * time.Minute,
		"0":            0,
		"-5":           0,
		"soon":         0,
		"999999999999": maxRetryAfter,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
		now.Add(48 * time.Hour).Format(http.TimeFormat):   maxRetryAfter,
	} {
		require.Equal(t, want, parseRetryAfter(in, now), "%q", in)
	}
}

func TestFormatRetryAfter(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0:                       "1",
		time.Millisecond:        "1",
		time.Second:             "1",
		1500 * time.Millisecond: "2",
		time.Minute:             "60",
	} {
		require.Equal(t, want, formatRetryAfter(d), "%v", d)
	}
}
