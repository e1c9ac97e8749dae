package api

import (
	_ "embed"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
	"sigs.k8s.io/yaml"
)

// The API's OpenAPI 3.1 description, written by hand in openapi.yaml and
// served at GET /openapi.yaml and GET /openapi.json. Like /healthz it needs
// no token: it describes the API and holds no data. The tests keep it
// honest: every route the server registers is in it and nothing else
// (openapi_test.go), and every request and answer of the package's tests is
// validated against it.

//go:embed openapi.yaml
var openAPIYAML []byte

// OpenAPI returns the API's OpenAPI 3.1 description, as YAML.
func OpenAPI() []byte { return openAPIYAML }

// openAPIJSON is the description as JSON, converted once.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) { return yaml.YAMLToJSON(openAPIYAML) })

// serveOpenAPIYAML is GET /openapi.yaml.
func serveOpenAPIYAML(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", openAPIYAML)
}

// serveOpenAPIJSON is GET /openapi.json.
func serveOpenAPIJSON(c echo.Context) error {
	b, err := openAPIJSON()
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// Route is one route the API serves: a method and an Echo path, such as
// "GET" and "/v1/orders/:order_id".
type Route struct {
	Method, Path string
}

// Routes lists the routes the server registered, mounts included.
func (s *Server) Routes() []Route {
	rs := s.echo.Routes()
	out := make([]Route, 0, len(rs))
	for _, r := range rs {
		out = append(out, Route{Method: r.Method, Path: r.Path})
	}
	return out
}
