package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// clientFlags are the flags of the commands that talk to the API.
type clientFlags struct {
	url, token string
	json       bool
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "api-url", "http://127.0.0.1:8080", "the API's base URL")
	fs.StringVar(&c.token, "token", "", "the API token's secret, sent as Authorization: Bearer (prefer the variable: command lines are visible)")
	fs.BoolVar(&c.json, "json", false, "print the API's JSON instead of a table, for scripts")
}

// client returns the API client the flags describe.
func (c *clientFlags) client() (*apiClient, error) {
	u, err := url.Parse(c.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError{fmt.Errorf("--api-url: %q is not an absolute http(s) URL", c.url)}
	}
	return &apiClient{base: strings.TrimRight(c.url, "/"), token: c.token, hc: &http.Client{Timeout: 60 * time.Second}}, nil
}

// apiClient sends requests to the orderflow API.
type apiClient struct {
	base, token string
	hc          *http.Client
}

// apiAnswer is a 2xx answer.
type apiAnswer struct {
	status int
	header http.Header
	body   []byte
}

// replayed reports whether the answer repeats an earlier request's.
func (a *apiAnswer) replayed() bool { return a.header.Get("Idempotent-Replayed") == "true" }

// problem is an RFC 9457 problem as the API sends it.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
	Errors []struct {
		Field   string `json:"field"`
		Message string `json:"message"`
	} `json:"errors"`
}

// apiError is an answer that is not 2xx: the problem's title and detail,
// and the fields that failed validation.
type apiError struct {
	status  int
	problem problem
}

// Error implements error.
func (e *apiError) Error() string {
	p := e.problem
	title := p.Title
	if title == "" {
		title = http.StatusText(e.status)
	}
	msg := fmt.Sprintf("%s (%d)", title, e.status)
	if p.Detail != "" {
		msg += ": " + p.Detail
	}
	for _, fe := range p.Errors {
		msg += fmt.Sprintf("\n  %s: %s", fe.Field, fe.Message)
	}
	return msg
}

// do sends a request; body, when not nil, is sent as JSON. An answer that
// is not 2xx is an *apiError.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, body []byte, header http.Header) (*apiAnswer, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		e := &apiError{status: res.StatusCode}
		_ = json.Unmarshal(b, &e.problem)
		return nil, e
	}
	return &apiAnswer{status: res.StatusCode, header: res.Header, body: b}, nil
}

// get sends a GET and decodes the answer into v.
func (c *apiClient) get(ctx context.Context, path string, query url.Values, v any) (*apiAnswer, error) {
	a, err := c.do(ctx, http.MethodGet, path, query, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		return nil, fmt.Errorf("GET %s: the answer is not what the API sends: %w", path, err)
	}
	return a, nil
}

// isStatus reports whether err is an API answer with status.
func isStatus(err error, status int) bool {
	var e *apiError
	return errors.As(err, &e) && e.status == status
}
