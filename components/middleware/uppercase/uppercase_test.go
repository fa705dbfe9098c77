package uppercase

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
)

func TestDirections(t *testing.T) {
	for dir, want := range map[string]string{"": "HELLO|world", "request": "HELLO|world", "response": "hello|WORLD", "both": "HELLO|WORLD"} {
		m := New()
		if err := m.Init(context.Background(), components.Metadata{Properties: map[string]string{"direction": dir}}); err != nil {
			t.Fatal(err)
		}
		var seen string
		var seenLen int64
		h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			seen, seenLen = string(b), r.ContentLength
			_, _ = io.WriteString(w, "world")
		}))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("hello")))
		if got := seen + "|" + rec.Body.String(); got != want || seenLen != 5 {
			t.Errorf("direction %q: %s (length %d), want %s", dir, got, seenLen, want)
		}
	}
	if err := New().Init(context.Background(), components.Metadata{Properties: map[string]string{"direction": "sideways"}}); !components.IsPermanent(err) {
		t.Errorf("bad direction: %v", err)
	}
}
