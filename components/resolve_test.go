package components

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
)

func TestResolve(t *testing.T) {
	secrets := map[string]string{"local/db/password": "s3cr3t-value", "local/single/single": "single-value-xyz"}
	fakeSecret := func(_ context.Context, store, name, key string) (string, error) {
		if store == "pending" {
			return "", ErrNotReady
		}
		v, ok := secrets[store+"/"+name+"/"+key]
		if !ok {
			return "", errors.New("no such secret")
		}
		return v, nil
	}
	env := Env{
		AppID: "app1", Namespace: "ns", PodName: "pod-7",
		Getenv:  func(k string) string { return map[string]string{"HOST": "h:1", "DAPR_API_TOKEN": "tok"}[k] },
		Secret:  fakeSecret,
		NewUUID: func() string { return "U" },
	}
	item := func(name, value string) MetadataItem { return MetadataItem{Name: name, Value: value, HasValue: true} }
	tests := []struct {
		name      string
		comp      Component
		env       *Env
		want      map[string]string
		wantErr   string
		permanent bool
	}{
		{
			name: "plain values and templates",
			comp: Component{Metadata: []MetadataItem{
				item("a", "x"), item("consumerID", "{appID}-{podName}"), item("group", "{namespace}"),
				item("id", "{uuid}/{uuid}"), item("braces", "{notATemplate}"),
			}},
			want: map[string]string{"a": "x", "consumerID": "app1-pod-7", "group": "ns.app1", "id": "U/U", "braces": "{notATemplate}"},
		},
		{
			name: "envRef only without a value",
			comp: Component{Metadata: []MetadataItem{
				{Name: "host", EnvRef: "HOST"}, {Name: "kept", Value: "v", HasValue: true, EnvRef: "HOST"}, {Name: "unset", EnvRef: "NOPE"},
			}},
			want: map[string]string{"host": "h:1", "kept": "v", "unset": ""},
		},
		{
			name:      "envRef deny list",
			comp:      Component{Name: "c", Source: "c.yaml", Metadata: []MetadataItem{{Name: "tok", EnvRef: "DAPR_API_TOKEN"}}},
			wantErr:   `c.yaml: component "c": spec.metadata[0] (tok).envRef: variable "DAPR_API_TOKEN" may not be read`,
			permanent: true,
		},
		{
			name: "secretKeyRef through auth.secretStore, key defaults to name",
			comp: Component{SecretStore: "local", Metadata: []MetadataItem{
				{Name: "pw", SecretKeyRef: &SecretKeyRef{Name: "db", Key: "password"}},
				{Name: "one", SecretKeyRef: &SecretKeyRef{Name: "single"}},
				{Name: "override", Value: "ignored", HasValue: true, SecretKeyRef: &SecretKeyRef{Name: "single"}},
			}},
			want: map[string]string{"pw": "s3cr3t-value", "one": "single-value-xyz", "override": "single-value-xyz"},
		},
		{
			name:      "secretKeyRef without a secret store in self-hosted mode",
			comp:      Component{Name: "c", Source: "c.yaml", Metadata: []MetadataItem{{Name: "pw", SecretKeyRef: &SecretKeyRef{Name: "db"}}}},
			wantErr:   `c.yaml: component "c": spec.metadata[0] (pw).secretKeyRef: no secret store to read it from; add auth.secretStore`,
			permanent: true,
		},
		{
			name: "default secret store (Kubernetes mode)",
			comp: Component{Metadata: []MetadataItem{{Name: "pw", SecretKeyRef: &SecretKeyRef{Name: "db", Key: "password"}}}},
			env:  &Env{DefaultSecretStore: "local", Secret: fakeSecret},
			want: map[string]string{"pw": "s3cr3t-value"},
		},
		{
			name: "values the operator filled in (Kubernetes mode) are decoded, not read",
			comp: Component{Metadata: []MetadataItem{
				{Name: "pw", Value: "czNjcjN0", HasValue: true, SecretKeyRef: &SecretKeyRef{Name: "db", Key: "password"}},
			}},
			env:  &Env{DefaultSecretStore: "kubernetes", Prefilled: "kubernetes"},
			want: map[string]string{"pw": "s3cr3t"},
		},
		{
			name: "another store than the prefilled one is read",
			comp: Component{SecretStore: "local", Metadata: []MetadataItem{{Name: "pw", SecretKeyRef: &SecretKeyRef{Name: "db", Key: "password"}}}},
			env:  &Env{DefaultSecretStore: "kubernetes", Prefilled: "kubernetes", Secret: fakeSecret},
			want: map[string]string{"pw": "s3cr3t-value"},
		},
		{
			name:      "a key the operator did not fill in",
			comp:      Component{Metadata: []MetadataItem{{Name: "pw", SecretKeyRef: &SecretKeyRef{Name: "db", Key: "nokey"}}}},
			env:       &Env{DefaultSecretStore: "kubernetes", Prefilled: "kubernetes"},
			wantErr:   `secret "db" key "nokey" from secret store "kubernetes": the operator sent no value`,
			permanent: true,
		},
		{
			name:      "a prefilled value that is not base64",
			comp:      Component{Metadata: []MetadataItem{{Name: "pw", Value: "%%%", HasValue: true, SecretKeyRef: &SecretKeyRef{Name: "db"}}}},
			env:       &Env{DefaultSecretStore: "kubernetes", Prefilled: "kubernetes"},
			wantErr:   "not base64",
			permanent: true,
		},
		{
			name:    "secret store not ready is retryable",
			comp:    Component{Name: "c", SecretStore: "pending", Metadata: []MetadataItem{{Name: "pw", SecretKeyRef: &SecretKeyRef{Name: "db"}}}},
			wantErr: `secret "db" key "db" from secret store "pending": component not ready`,
		},
		{
			name:      "podName template without a pod name",
			comp:      Component{Name: "c", Metadata: []MetadataItem{item("consumerID", "{podName}")}},
			env:       &Env{AppID: "a"},
			wantErr:   `spec.metadata[0] (consumerID): uses {podName} but the pod name is unknown`,
			permanent: true,
		},
		{
			name: "templates apply to secret values too (as in Dapr)",
			comp: Component{SecretStore: "local", Metadata: []MetadataItem{{Name: "x", SecretKeyRef: &SecretKeyRef{Name: "tmpl"}}}},
			env: &Env{AppID: "a", Secret: func(context.Context, string, string, string) (string, error) {
				return "{appID}", nil
			}},
			want: map[string]string{"x": "a"},
		},
		{
			name:      "nil Secret func",
			comp:      Component{SecretStore: "local", Metadata: []MetadataItem{{Name: "x", SecretKeyRef: &SecretKeyRef{Name: "n"}}}},
			env:       &Env{},
			wantErr:   "not available",
			permanent: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := env
			if tc.env != nil {
				e = *tc.env
			}
			md, err := e.Resolve(context.Background(), tc.comp)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				if IsPermanent(err) != tc.permanent {
					t.Errorf("IsPermanent = %v, want %v", IsPermanent(err), tc.permanent)
				}
				for _, v := range secrets {
					if strings.Contains(err.Error(), v) {
						t.Errorf("error leaks a secret: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(md.Properties, tc.want) {
				t.Errorf("properties = %v, want %v", md.Properties, tc.want)
			}
		})
	}
}

func TestResolveRandomUUID(t *testing.T) {
	md, err := Env{}.Resolve(context.Background(), Component{Metadata: []MetadataItem{{Name: "id", Value: "{uuid} {uuid}", HasValue: true}}})
	if err != nil {
		t.Fatal(err)
	}
	a, b, _ := strings.Cut(md.Properties["id"], " ")
	if len(a) != 36 || a == b || a[14] != '4' {
		t.Errorf("uuids %q %q", a, b)
	}
}
