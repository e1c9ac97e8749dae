package providers

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxRetryAfter caps a provider's Retry-After hint, so that a wrong header
// cannot park a step for years.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads a Retry-After header value, given either as a number
// of seconds or as an HTTP-date, relative to now. It returns 0 for an empty,
// malformed or past value, and caps the hint at maxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		if d := at.Sub(now); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// formatRetryAfter writes d as a Retry-After value in whole seconds, rounded
// up, and at least 1.
func formatRetryAfter(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	return strconv.FormatInt(max(secs, 1), 10)
}
