package localenv

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/components/secretstores/secretstoretest"
)

// fakeEnv is an environment for one test.
type fakeEnv map[string]string

func (e fakeEnv) lookup(k string) (string, bool) { v, ok := e[k]; return v, ok }

func (e fakeEnv) environ() []string {
	var out []string
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	return out
}

func TestContract(t *testing.T) {
	secretstoretest.Run(t, func(t *testing.T, secrets map[string]string) (secretstores.SecretStore, components.Metadata) {
		env := fakeEnv{"OTHER": "x", "DAPR_API_TOKEN": "tok"}
		for k, v := range secrets {
			env["T_"+k] = v
		}
		return NewWithEnv(env.lookup, env.environ), components.Metadata{Name: "env", Properties: map[string]string{"prefix": "T_"}}
	})
}

func TestContractProcessEnv(t *testing.T) {
	secretstoretest.Run(t, func(t *testing.T, secrets map[string]string) (secretstores.SecretStore, components.Metadata) {
		for k, v := range secrets {
			t.Setenv("TANDEMTEST_"+k, v)
		}
		return New(), components.Metadata{Name: "env", Properties: map[string]string{"prefix": "TANDEMTEST_"}}
	})
}

func TestPrefixAndDenyList(t *testing.T) {
	env := fakeEnv{"APP_API_TOKEN": "a", "DAPR_API_TOKEN": "d", "dapr_x": "d2", "PLAIN": "p", "MY_ONE": "1", "MY_": "empty-name"}
	tests := []struct {
		prefix   string
		get      string
		want     map[string]string
		notFound bool
		bulk     map[string]map[string]string
	}{
		{get: "PLAIN", want: map[string]string{"PLAIN": "p"},
			bulk: map[string]map[string]string{"PLAIN": {"PLAIN": "p"}, "MY_ONE": {"MY_ONE": "1"}, "MY_": {"MY_": "empty-name"}}},
		{get: "APP_API_TOKEN", notFound: true},
		{get: "DAPR_API_TOKEN", notFound: true},
		{get: "dapr_x", notFound: true},
		{get: "UNSET", notFound: true},
		{get: "", notFound: true},
		{prefix: "MY_", get: "ONE", want: map[string]string{"ONE": "1"}, bulk: map[string]map[string]string{"ONE": {"ONE": "1"}}},
		{prefix: "DAPR_", get: "API_TOKEN", notFound: true, bulk: map[string]map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.prefix+tc.get, func(t *testing.T) {
			s := NewWithEnv(env.lookup, env.environ)
			if err := s.Init(context.Background(), components.Metadata{Properties: map[string]string{"prefix": tc.prefix}}); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetSecret(context.Background(), secretstores.GetRequest{Name: tc.get})
			if tc.notFound {
				if !errors.Is(err, secretstores.ErrNotFound) {
					t.Fatalf("GetSecret(%q) = %v, %v; want ErrNotFound", tc.get, got, err)
				}
			} else if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("GetSecret(%q) = %v, %v; want %v", tc.get, got, err, tc.want)
			}
			if tc.bulk != nil {
				all, err := s.BulkGetSecret(context.Background(), secretstores.BulkGetRequest{})
				if err != nil || !reflect.DeepEqual(all, tc.bulk) {
					t.Errorf("BulkGetSecret = %v, %v; want %v", all, err, tc.bulk)
				}
			}
		})
	}
}
