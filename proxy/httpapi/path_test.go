package httpapi

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

var parseTests = []struct {
	path        string
	app, method string
	ok          bool
}{
	{"/v1.0/invoke/orders/method/items", "orders", "items", true},
	{"/v1.0/invoke/orders/method/items/42/", "orders", "items/42", true},
	{"/v1.0/invoke/orders.prod/method/a", "orders.prod", "a", true},
	{"/v1.0/invoke/orders/method/", "orders", "", true},
	{"/v1.0/invoke/orders/method/a/../../..", "orders", "../..", true},
	{"/v1.0/invoke/orders/method//abs", "orders", "/abs", true},
	{"//v1.0///invoke//orders/method/x", "orders", "x", true},
	{"v1.0/invoke/orders/method/x", "orders", "x", true},
	{"/v1.0/invoke/http://example.com/method/x", "http://example.com", "x", true},
	{"/v1.0/invoke/a%2Bb/method/x", "a+b", "x", true},
	{"/v1.0/invoke/a+b/method/x", "a b", "x", true},
	{"/v1.0/invoke/bad%zz/method/x", "bad%zz", "x", true},
	{"/v1.0/invoke/orders/method/method/x", "orders", "method/x", true},
	{"/v1.0/invoke/orders/method", "", "", false},
	{"/v1.0/invoke//method/x", "", "", false},
	{"/v1.0/invoke/", "", "", false},
	{"/v1.0/invoke", "", "", false},
	{"/v1.0/invokes/a/method/x", "", "", false},
	{"/v1.0-alpha1/invoke/a/method/x", "", "", false},
	{"/v2/invoke/a/method/x", "", "", false},
	{"", "", "", false},
	{"/", "", "", false},
}

func TestParseInvokePath(t *testing.T) {
	for _, tt := range parseTests {
		app, method, ok := ParseInvokePath(tt.path)
		if app != tt.app || method != tt.method || ok != tt.ok {
			t.Errorf("ParseInvokePath(%q) = %q, %q, %v; want %q, %q, %v", tt.path, app, method, ok, tt.app, tt.method, tt.ok)
		}
	}
}

// validAppID is an app ID that survives daprd's query-unescaping as is.
func validAppID(s string) bool {
	if s == "" || strings.Contains(s, "/method/") {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

// validMethod is a method that is already clean and relative.
func validMethod(s string) bool {
	if s == "" {
		return true
	}
	if s[0] == '/' || s[len(s)-1] == '/' || strings.Contains(s, "//") {
		return false
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

func FuzzParseInvokePath(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(tt.path, tt.app, tt.method)
	}
	f.Fuzz(func(t *testing.T, p, app, method string) {
		// Never panics, on anything.
		gotApp, gotMethod, ok := ParseInvokePath(p)
		if ok && gotApp == "" {
			t.Errorf("ParseInvokePath(%q) ok with empty app", p)
		}
		if !ok && (gotApp != "" || gotMethod != "") {
			t.Errorf("ParseInvokePath(%q) not ok but returned %q %q", p, gotApp, gotMethod)
		}
		// Valid inputs round-trip.
		if !validAppID(app) || !validMethod(method) {
			return
		}
		built := "/v1.0/invoke/" + app + "/method/" + method
		gotApp, gotMethod, ok = ParseInvokePath(built)
		if !ok || gotApp != app || gotMethod != method {
			t.Errorf("round trip of %q: got %q %q %v", built, gotApp, gotMethod, ok)
		}
	})
}

func TestBasicAppID(t *testing.T) {
	tests := []struct {
		raw  string
		id   string
		isID bool
	}{
		{"dapr-app-id:orders", "orders", true},
		{"DAPR-APP-ID:orders", "orders", true},
		{"user:pass", "", false},
		{"dapr-app-id:a:b", "", false},
		{"dapr-app-id", "", false},
	}
	for _, tt := range tests {
		r := &http.Request{URL: &url.URL{Path: "/x"}, Header: http.Header{}}
		r.SetBasicAuth(strings.SplitN(tt.raw, ":", 2)[0], strings.Join(strings.SplitN(tt.raw, ":", 2)[1:], ""))
		if !strings.Contains(tt.raw, ":") {
			r.Header.Set("Authorization", "Basic "+"ZGFwci1hcHAtaWQ=")
		}
		id, _ := findTarget(r)
		if id != tt.id {
			t.Errorf("%q: id %q, want %q", tt.raw, id, tt.id)
		}
		if tt.isID && r.Header.Get("Authorization") != "" {
			t.Errorf("%q: Authorization not stripped", tt.raw)
		}
	}
	if _, ok := basicAppID("!!!"); ok {
		t.Error("bad base64 accepted")
	}
}
