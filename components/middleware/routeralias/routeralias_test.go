package routeralias

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tandemrun/tandem/components"
)

func initWith(t *testing.T, props map[string]string) *Middleware {
	t.Helper()
	m := New().(*Middleware)
	if err := m.Init(context.Background(), components.Metadata{Name: "ra", Properties: props}); err != nil {
		t.Fatal(err)
	}
	return m
}

func rewrite(m *Middleware, target string) (path, query string) {
	h := m.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		path, query = r.URL.Path, r.URL.RawQuery
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, target, nil))
	return path, query
}

func TestRoutes(t *testing.T) {
	m := initWith(t, map[string]string{"routes": `{
		"/v1.0/mall/activity/info": "/v1.0/invoke/srv.default/method/mall/activity/info",
		"/v1.0/hello/activity/{id}/info": "/v1.0/invoke/srv.default/method/hello/activity/info",
		"/items/{n:[0-9]{2}}": "/v1.0/invoke/items/method/get"
	}`})
	for _, tc := range []struct{ in, path, query string }{
		{"/v1.0/mall/activity/info", "/v1.0/invoke/srv.default/method/mall/activity/info", ""},
		{"/v1.0/hello/activity/42/info?x=1", "/v1.0/invoke/srv.default/method/hello/activity/info", "id=42&x=1"},
		{"/items/12", "/v1.0/invoke/items/method/get", "n=12"},
		{"/items/123", "/items/123", ""},
		{"/v1.0/hello/activity/a/b/info", "/v1.0/hello/activity/a/b/info", ""},
		{"/v1.0/mall/activity/info/", "/v1.0/mall/activity/info/", ""},
	} {
		path, query := rewrite(m, tc.in)
		if path != tc.path || query != tc.query {
			t.Errorf("%s -> %s?%s, want %s?%s", tc.in, path, query, tc.path, tc.query)
		}
	}
}

func TestYAMLAndLegacyForms(t *testing.T) {
	m := initWith(t, map[string]string{"routes": "/a: /b\n/c: /d\n"})
	if p, _ := rewrite(m, "/c"); p != "/d" {
		t.Errorf("yaml routes: /c -> %s", p)
	}
	m = initWith(t, map[string]string{"/a": "/b", "/c": "/d"})
	if p, _ := rewrite(m, "/a"); p != "/b" {
		t.Errorf("legacy routes: /a -> %s", p)
	}
}

func TestBadRoutesArePermanent(t *testing.T) {
	for _, props := range []map[string]string{
		{"routes": "{not json"},
		{"routes": `{"/a/{id": "/b"}`},
		{"routes": `{"/a/{id:[}": "/b"}`},
		{"routes": `{"/a/{:x}": "/b"}`},
		{"routes": `{"/a": ""}`},
		{"/a": "", "/b": "/c"},
	} {
		err := New().Init(context.Background(), components.Metadata{Properties: props})
		if err == nil || !components.IsPermanent(err) {
			t.Errorf("%v: err %v, want a permanent error", props, err)
		}
	}
}

// FuzzCompile checks that no template makes compile or match panic, and
// that a template without variables matches itself.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{"/a", "/a/{id}", "/a/{id:[0-9]+}/b", "/{a}{b}", "/{x:(a)}", "{", "}", "/{x:{2}}", "/{x:a{1,2}}"} {
		f.Add(s, "/a/1/b")
	}
	f.Fuzz(func(t *testing.T, template, path string) {
		r, err := compile(template, "/target")
		if err != nil {
			return
		}
		r.match(path)
		if len(r.vars) == 0 {
			if _, ok := r.match(template); !ok {
				t.Fatalf("literal template %q does not match itself", template)
			}
		}
	})
}

// FuzzParseRoutes checks that no routes property makes the parser or the
// rewriting panic.
func FuzzParseRoutes(f *testing.F) {
	for _, s := range []string{`{"/a": "/b"}`, "/a: /b\n", `{"/a/{id}": "/b"}`, "[1,2]", "{", `{"": ""}`, `{"/x/{y:[a-z]+}": "/z"}`} {
		f.Add(s, "/a/1")
	}
	f.Fuzz(func(t *testing.T, routes, path string) {
		rs, err := parseRoutes(map[string]string{"routes": routes})
		if err != nil {
			return
		}
		m := &Middleware{routes: rs}
		h := m.Handler(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.Path = path
		h.ServeHTTP(httptest.NewRecorder(), r)
	})
}
