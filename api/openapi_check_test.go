package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/orderflow/orderflow/api"
)

// Every request the package's tests send, and every answer, is checked
// against the OpenAPI document (api/openapi.yaml) with kin-openapi, so that
// the document cannot drift from the server:
//
//   - every answer must be one the document describes for its operation:
//     the status, the headers it requires, the media type and the body's
//     schema (the schemas refuse fields they do not name);
//   - a request the server accepted (2xx) must be one the document allows;
//     a request it refused may be anything, that is what the tests send;
//   - after a full run, every operation must have been seen answering, and
//     every status the document names somewhere (see TestMain).
//
// Requests outside the document (mounts, unknown routes) are not checked.

// loadSpec parses and validates the OpenAPI document once.
var loadSpec = sync.OnceValues(func() (*specIndex, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI())
	if err != nil {
		return nil, fmt.Errorf("loading openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not valid: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("routing openapi.yaml: %w", err)
	}
	return &specIndex{doc: doc, router: router}, nil
})

// specIndex is the loaded document.
type specIndex struct {
	doc    *openapi3.T
	router routers.Router
}

// spec returns the loaded document or fails t.
func spec(t testing.TB) *specIndex {
	t.Helper()
	s, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// seen records what the checked requests covered: operations answered, and
// statuses answered by any operation.
var seen = struct {
	sync.Mutex
	operations map[string]bool
	statuses   map[string]bool
}{operations: map[string]bool{}, statuses: map[string]bool{}}

func see(operationID string, status int) {
	seen.Lock()
	defer seen.Unlock()
	seen.operations[operationID] = true
	seen.statuses[fmt.Sprint(status)] = true
}

// checkedAgainstSpec returns h, each request and answer checked against the
// document. Answers go through as they are written (a streamed answer stays
// streamed).
func checkedAgainstSpec(t *testing.T, h http.Handler) http.Handler {
	s := spec(t)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the request body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		tee := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tee, r)
		if tee.code == 0 {
			tee.code = http.StatusOK
		}
		if problem := s.check(r, body, tee.code, w.Header(), tee.body.Bytes()); problem != "" {
			t.Errorf("%s %s (answered %d) disagrees with openapi.yaml: %s\nanswer: %s", r.Method, r.URL, tee.code, problem, tee.body.Bytes())
		}
	})
}

// teeWriter passes an answer on and keeps a copy.
type teeWriter struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (w *teeWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.body.Write(b)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer's Flush.
func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// The document's media types that kin-openapi cannot read by itself, each
// checked here before its body's schema (a string) is:
//
//   - image/svg+xml (the workflow diagrams): an XML document whose root is
//     an <svg> element;
//   - text/event-stream (GET /v1/events): server-sent events as API.md and
//     the document describe them, each "hello" and "order" event's data a
//     JSON object.
func init() {
	openapi3filter.RegisterBodyDecoder("image/svg+xml", decodeSVG)
	openapi3filter.RegisterBodyDecoder("text/event-stream", decodeEventStream)
}

// decodeSVG is the body decoder of image/svg+xml.
func decodeSVG(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	var root struct{ XMLName xml.Name }
	if err := xml.Unmarshal(b, &root); err != nil {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: err}
	}
	if root.XMLName.Local != "svg" {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Reason: "the root element is <" + root.XMLName.Local + ">, not <svg>"}
	}
	return string(b), nil
}

// decodeEventStream is the body decoder of text/event-stream: it checks
// every line, and the JSON of every event's data.
func decodeEventStream(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	bad := func(reason string) error {
		return &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Reason: reason}
	}
	if len(b) > 0 && !bytes.HasSuffix(b, []byte("\n\n")) {
		return nil, bad("the stream does not end with a whole event")
	}
	var event string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			event = ""
		case strings.HasPrefix(line, ": "), strings.HasPrefix(line, "retry: "):
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
			if event != "hello" && event != "order" {
				return nil, bad("an undocumented event " + event)
			}
		case strings.HasPrefix(line, "data: "):
			var v map[string]any
			if event == "" {
				return nil, bad("data without an event")
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
				return nil, bad("the data of a " + event + " event is not a JSON object: " + err.Error())
			}
		default:
			return nil, bad("an undocumented line " + line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: err}
	}
	return string(b), nil
}

// checkOptions are kin-openapi's options for the checks: authentication
// is the server's business (auth_test.go), and every status answered must
// be documented.
var checkOptions = &openapi3filter.Options{
	AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
	IncludeResponseStatus: true,
	MultiError:            true,
}

// check returns what is wrong with one exchange, or "".
func (s *specIndex) check(r *http.Request, body []byte, status int, header http.Header, answer []byte) string {
	req := r.Clone(context.Background())
	req.Body = io.NopCloser(bytes.NewReader(body))
	if ct := req.Header.Get("Content-Type"); isPlusJSON(ct) {
		// The document names application/json; the server takes every
		// application/*+json too, which OpenAPI cannot spell (its
		// description says so).
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		return "" // not described: a mount, or no route at all
	}
	see(route.Operation.OperationID, status)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: checkOptions}
	var problems []string
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil && status < 300 {
		problems = append(problems, "the server accepted a request the document refuses: "+err.Error())
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header.Clone(), Options: checkOptions,
	}
	out.SetBodyBytes(answer)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		problems = append(problems, "the answer is not one the document describes: "+err.Error())
	}
	return strings.Join(problems, "; ")
}

// TestMain runs the tests, then, after a full and successful run, requires
// that they saw every operation of the document answer, and every status it
// documents answered somewhere, so that a new operation or error comes with
// tests that show it as documented.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && fullRun() {
		if missing := uncovered(); missing != "" {
			fmt.Fprintln(os.Stderr, "openapi.yaml coverage: "+missing)
			code = 1
		}
	}
	os.Exit(code)
}

// fullRun reports whether every test ran: no -run, -skip or -short.
func fullRun() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return !testing.Short()
}

// uncovered lists the operations and statuses the tests never saw.
func uncovered() string {
	s, err := loadSpec()
	if err != nil {
		return err.Error()
	}
	seen.Lock()
	defer seen.Unlock()
	var ops, statuses []string
	documented := map[string]bool{}
	for _, path := range s.doc.Paths.InMatchingOrder() {
		for _, op := range s.doc.Paths.Value(path).Operations() {
			if !seen.operations[op.OperationID] {
				ops = append(ops, op.OperationID)
			}
			for status := range op.Responses.Map() {
				documented[status] = true
			}
		}
	}
	for status := range documented {
		// A 500 comes only from a bug; TestPanicIsInternalError shows it
		// on a mount, which the document does not describe.
		if !seen.statuses[status] && status != "500" {
			statuses = append(statuses, status)
		}
	}
	slices.Sort(ops)
	slices.Sort(statuses)
	var out []string
	if len(ops) > 0 {
		out = append(out, "operations no test exercised: "+strings.Join(ops, ", "))
	}
	if len(statuses) > 0 {
		out = append(out, "statuses no test saw: "+strings.Join(statuses, ", "))
	}
	return strings.Join(out, "; ")
}

// isPlusJSON reports whether ct is an application/*+json media type.
func isPlusJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	sub, ok := strings.CutPrefix(mt, "application/")
	return err == nil && ok && strings.HasSuffix(sub, "+json") && len(sub) > len("+json")
}
