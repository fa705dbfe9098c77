// Package uppercase is middleware.http.uppercase, the test middleware of
// Dapr's own suite: it turns the request body (metadata direction:
// request, the default), the response body (response) or both (both) into
// upper case.
package uppercase

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/middleware"
)

// Type is the spec.type.
const Type = "middleware.http.uppercase"

// Middleware is one uppercase component.
type Middleware struct {
	request, response bool
}

var _ middleware.Middleware = (*Middleware)(nil)

// New returns an uninitialised component.
func New() middleware.Middleware { return &Middleware{} }

// Init reads metadata direction (request, response or both).
func (m *Middleware) Init(_ context.Context, md components.Metadata) error {
	switch d := strings.ToLower(md.String("direction", "request")); d {
	case "request":
		m.request = true
	case "response":
		m.response = true
	case "both":
		m.request, m.response = true, true
	default:
		// Dapr falls back to request; a typo is better reported.
		return components.Permanent(fmt.Errorf("metadata direction is %q: use request, response or both", d))
	}
	return nil
}

// Handler implements middleware.Middleware.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.request && r.Body != nil && r.Body != http.NoBody {
			b, err := io.ReadAll(r.Body)
			_ = r.Body.Close()
			if err != nil {
				http.Error(w, "middleware.http.uppercase: reading the request body: "+err.Error(), http.StatusBadRequest)
				return
			}
			b = bytes.ToUpper(b)
			r.Body = io.NopCloser(bytes.NewReader(b))
			r.ContentLength = int64(len(b))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
			if r.Header.Get("Content-Length") != "" {
				r.Header.Set("Content-Length", strconv.Itoa(len(b)))
			}
		}
		if m.response {
			w = upperWriter{w}
		}
		next.ServeHTTP(w, r)
	})
}

// Close implements middleware.Middleware.
func (m *Middleware) Close() error { return nil }

// upperWriter upper-cases what is written through it. ASCII keeps its
// length; so the Content-Length the next handler set stays right for it.
type upperWriter struct{ http.ResponseWriter }

func (u upperWriter) Write(p []byte) (int, error) {
	if _, err := u.ResponseWriter.Write(bytes.ToUpper(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (u upperWriter) Unwrap() http.ResponseWriter { return u.ResponseWriter }
