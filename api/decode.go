package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/orderflow/orderflow/orders"
)

// MaxBodyBytes is the largest request body accepted (413 above it).
const MaxBodyBytes = 1 << 20

// readJSONBody checks the media type and size of the request body and
// returns it.
func readJSONBody(c echo.Context) ([]byte, error) {
	if ct := c.Request().Header.Get(echo.HeaderContentType); !isJSONMediaType(ct) {
		return nil, unsupportedMediaType(ct)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, problem(http.StatusRequestEntityTooLarge, codeTooLarge, "Body too large",
			fmt.Sprintf("the body must be at most %d bytes", MaxBodyBytes))
	}
	if err != nil {
		return nil, problem(http.StatusBadRequest, codeMalformed, "Malformed body", "the body could not be read")
	}
	return body, nil
}

// isJSONMediaType reports whether a Content-Type is application/json or
// application/*+json.
func isJSONMediaType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	sub, ok := strings.CutPrefix(mt, "application/")
	return ok && (sub == "json" || (strings.HasSuffix(sub, "+json") && len(sub) > len("+json")))
}

// decodeStrict decodes one JSON value into v, rejecting unknown fields and
// trailing data. Type errors are reported as field validation errors.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			return problem(http.StatusBadRequest, codeMalformed, "Malformed body", "the body must hold exactly one JSON object")
		}
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return problem(http.StatusBadRequest, codeMalformed, "Malformed body", "the body must be a JSON object")
		}
		return validationProblem([]orders.FieldError{{Field: field, Message: "must be " + jsonKind(typeErr.Type.Kind().String())}})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return validationProblem([]orders.FieldError{{Field: name, Message: "is not a known field"}})
	case errors.Is(err, io.EOF):
		return problem(http.StatusBadRequest, codeMalformed, "Malformed body", "the body is empty")
	default:
		return problem(http.StatusBadRequest, codeMalformed, "Malformed body", "the body is not valid JSON: "+err.Error())
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "uint", "uint64":
		return "an integer"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return "of another type"
}
