package localfile

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/components/secretstores/secretstoretest"
)

func TestContract(t *testing.T) {
	secretstoretest.Run(t, func(t *testing.T, secrets map[string]string) (secretstores.SecretStore, components.Metadata) {
		b, err := json.Marshal(secrets)
		if err != nil {
			t.Fatal(err)
		}
		path := writeFile(t, string(b))
		return New(), meta(map[string]string{"secretsFile": path})
	})
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func meta(props map[string]string) components.Metadata {
	return components.Metadata{Name: "local", Type: Type, Properties: props}
}

const nested = `{
  "redisPassword": "pw",
  "connectionStrings": {"sql": "s", "mysql": "m", "deep": {"x": 1.50}},
  "list": ["a", true, null],
  "n": 42
}`

var layoutCases = []struct {
	name     string
	json     string
	props    map[string]string
	want     map[string]map[string]string
	features []secretstores.Feature
}{
	{
		name: "single-valued flattens with ':'",
		json: nested,
		want: map[string]map[string]string{
			"redisPassword":            {"redisPassword": "pw"},
			"connectionStrings:sql":    {"connectionStrings:sql": "s"},
			"connectionStrings:mysql":  {"connectionStrings:mysql": "m"},
			"connectionStrings:deep:x": {"connectionStrings:deep:x": "1.50"},
			"list:0":                   {"list:0": "a"},
			"list:1":                   {"list:1": "true"},
			"list:2":                   {"list:2": ""},
			"n":                        {"n": "42"},
		},
		features: []secretstores.Feature{},
	},
	{
		name:  "custom separator",
		json:  `{"a": {"b": "c"}}`,
		props: map[string]string{"nestedSeparator": "."},
		want:  map[string]map[string]string{"a.b": {"a.b": "c"}},
	},
	{
		name:  "multi-valued keeps one level",
		json:  nested,
		props: map[string]string{"multiValued": "true"},
		want: map[string]map[string]string{
			"redisPassword":     {"redisPassword": "pw"},
			"connectionStrings": {"sql": "s", "mysql": "m", "deep:x": "1.50"},
			"list":              {"0": "a", "1": "true", "2": ""},
			"n":                 {"n": "42"},
		},
		features: []secretstores.Feature{secretstores.FeatureMultipleKeyValuesPerSecret},
	},
}

func TestLayouts(t *testing.T) {
	for _, tc := range layoutCases {
		t.Run(tc.name, func(t *testing.T) {
			props := map[string]string{"secretsFile": writeFile(t, tc.json)}
			for k, v := range tc.props {
				props[k] = v
			}
			s := New()
			if err := s.Init(context.Background(), meta(props)); err != nil {
				t.Fatal(err)
			}
			all, err := s.BulkGetSecret(context.Background(), secretstores.BulkGetRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(all, tc.want) {
				t.Errorf("BulkGetSecret =\n%v\nwant\n%v", all, tc.want)
			}
			for name, want := range tc.want {
				got, err := s.GetSecret(context.Background(), secretstores.GetRequest{Name: name})
				if err != nil || !reflect.DeepEqual(got, want) {
					t.Errorf("GetSecret(%q) = %v, %v; want %v", name, got, err, want)
				}
			}
			if tc.features != nil && !reflect.DeepEqual(s.Features(), tc.features) {
				t.Errorf("Features = %v, want %v", s.Features(), tc.features)
			}
		})
	}
}

var initErrorCases = []struct {
	name      string
	json      string // "" = no file written
	props     map[string]string
	wantErr   string
	permanent bool
}{
	{name: "no secretsFile", props: map[string]string{}, wantErr: "secretsFile is missing", permanent: true},
	{name: "missing file", props: map[string]string{"secretsFile": "/nonexistent/s.json"}, wantErr: "read secrets file"},
	{name: "bad multiValued", json: `{}`, props: map[string]string{"multiValued": "maybe"}, wantErr: "multiValued", permanent: true},
	{name: "syntax error does not leak content", json: `{"k": "hunter2-secret" x}`, wantErr: "invalid JSON at byte"},
	{name: "not an object", json: `["a"]`, wantErr: "JSON object"},
	{name: "two values", json: `{} {}`, wantErr: "more than one"},
	{name: "flattened duplicate", json: `{"a:b": "1", "a": {"b": "2"}}`, wantErr: "appears twice"},
}

func TestInitErrors(t *testing.T) {
	for _, tc := range initErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			props := map[string]string{}
			if tc.json != "" {
				props["secretsFile"] = writeFile(t, tc.json)
			}
			for k, v := range tc.props {
				props[k] = v
			}
			err := New().Init(context.Background(), meta(props))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Init error = %v, want it to contain %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error leaks file content: %v", err)
			}
			if got := components.IsPermanent(err); got != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v", got, tc.permanent)
			}
		})
	}
}

func TestMissingSecret(t *testing.T) {
	s := New()
	if err := s.Init(context.Background(), meta(map[string]string{"secretsFile": writeFile(t, `{"a": "b"}`)})); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetSecret(context.Background(), secretstores.GetRequest{Name: "nope"})
	if !errors.Is(err, secretstores.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	// daprd's local.file wording, which its integration suite matches.
	if err.Error() != "secret nope not found" {
		t.Fatalf("err = %q, want daprd's %q", err, "secret nope not found")
	}
}
