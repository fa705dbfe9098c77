package state

import (
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
)

func TestKeyPrefix(t *testing.T) {
	tests := []struct {
		name     string
		prefix   string // keyPrefix property; "-" = absent
		appID    string
		ns       string
		key      string
		want     string
		wantErr  bool
		initFail bool
	}{
		{"default is appid", "-", "myapp", "", "k", "myapp||k", false, false},
		{"appid", "appid", "myapp", "", "k", "myapp||k", false, false},
		{"appid case-insensitive", "AppID", "myapp", "", "k", "myapp||k", false, false},
		{"appid without app", "appid", "", "", "k", "k", false, false},
		{"name", "name", "myapp", "", "k", "statestore||k", false, false},
		{"namespace", "namespace", "myapp", "prod", "k", "prod.myapp||k", false, false},
		{"namespace without namespace", "namespace", "myapp", "", "k", "myapp||k", false, false},
		{"namespace without app", "namespace", "", "prod", "k", "k", false, false},
		{"none", "none", "myapp", "", "k", "k", false, false},
		{"custom is lowercased", "Shared", "myapp", "", "k", "shared||k", false, false},
		{"illegal key", "-", "myapp", "", "a||b", "", true, false},
		{"illegal prefix", "a||b", "myapp", "", "k", "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			md := components.Metadata{Name: "statestore", AppID: tc.appID, Namespace: tc.ns, Properties: map[string]string{}}
			if tc.prefix != "-" {
				md.Properties["keyPrefix"] = tc.prefix
			}
			p, err := NewKeyPrefix(md)
			if (err != nil) != tc.initFail {
				t.Fatalf("NewKeyPrefix err = %v, want failure %v", err, tc.initFail)
			}
			if err != nil {
				return
			}
			got, err := p.Key(tc.key)
			if tc.wantErr {
				if !errors.Is(err, ErrIllegalKey) {
					t.Fatalf("Key(%q) err = %v, want ErrIllegalKey", tc.key, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Key(%q) = %q, %v; want %q", tc.key, got, err, tc.want)
			}
			if orig := p.Original(got); orig != tc.key {
				t.Errorf("Original(%q) = %q, want %q", got, orig, tc.key)
			}
		})
	}
}

func TestOriginalKey(t *testing.T) {
	for in, want := range map[string]string{"app||k": "k", "k": "k", "a||b||c": "b", "||k": "k"} {
		if got := OriginalKey(in); got != want {
			t.Errorf("OriginalKey(%q) = %q, want %q", in, got, want)
		}
	}
}
