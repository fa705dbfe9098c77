package vault

import (
	"encoding/json"
	"testing"
)

func TestText(t *testing.T) {
	for _, tc := range []struct {
		in   any
		want string
	}{
		{"plain", "plain"},
		{"", ""},
		{json.Number("5432"), "5432"},
		{true, "true"},
		{nil, "null"},
		{[]any{"a", json.Number("1")}, `["a",1]`},
		{map[string]any{"b": "2", "a": "1"}, `{"a":"1","b":"2"}`},
	} {
		if got := text(tc.in); got != tc.want {
			t.Errorf("text(%#v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBadPath(t *testing.T) {
	for p, want := range map[string]bool{
		"a": false, "a/b": false, "a.b/c..d": false, "ü/ß": false,
		"": true, "/a": true, "a/": true, "a//b": true, ".": true, "..": true, "a/../b": true, "a/./b": true,
	} {
		if got := badPath(p); got != want {
			t.Errorf("badPath(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestVersion(t *testing.T) {
	v2, v1 := &conn{kv: 2, cfg: config{EnginePath: "secret"}}, &conn{kv: 1, cfg: config{EnginePath: "kv"}}
	for _, tc := range []struct {
		c       *conn
		id      string
		want    string
		wantErr bool
	}{
		{v2, "", "", false},
		{v2, "0", "", false},
		{v2, " 3 ", "3", false},
		{v2, "x", "", true},
		{v2, "-1", "", true},
		{v2, "99999999999999999999", "", true},
		{v1, "", "", false},
		{v1, "0", "", false},
		{v1, "2", "", true},
	} {
		got, err := tc.c.version(map[string]string{"version_id": tc.id})
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("kv%d version(%q) = %q, %v; want %q, error %v", tc.c.kv, tc.id, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		kv               int
		engine, prefix   string
		kind, name, want string
	}{
		{2, "secret", "dapr", "data", "db", "secret/data/dapr/db"},
		{2, "secret", "", "metadata", "", "secret/metadata/"},
		{2, "team/kv", "a/b", "metadata", "x/", "team/kv/metadata/a/b/x/"},
		{1, "kv", "dapr", "data", "db", "kv/dapr/db"},
		{1, "kv", "", "metadata", "", "kv/"},
	} {
		c := &conn{kv: tc.kv, cfg: config{EnginePath: tc.engine, Prefix: tc.prefix}}
		if got := c.path(tc.kind, tc.name); got != tc.want {
			t.Errorf("kv%d %s/%s path(%s, %q) = %q, want %q", tc.kv, tc.engine, tc.prefix, tc.kind, tc.name, got, tc.want)
		}
	}
}
