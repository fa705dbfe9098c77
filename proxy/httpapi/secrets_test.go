package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/proxy/api"
)

func TestSecrets(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, Config{Secrets: f.secret})
	runCalls(t, srv.URL, []stateCall{
		{name: "get", method: "GET", path: "/v1.0/secrets/secretstore/db-password", wantCode: 200, wantBody: `{"db-password":"s3cr3t-value"}`},
		{name: "nested key", method: "GET", path: "/v1.0/secrets/secretstore/nested:user?metadata.version_id=1", wantCode: 200, wantBody: `{"nested:user":"u1"}`},
		{name: "denied by scope", method: "GET", path: "/v1.0/secrets/secretstore/denied", wantCode: 403, wantErr: "ERR_PERMISSION_DENIED", wantMsg: `access denied by policy to get "denied" from "secretstore"`},
		{name: "missing secret", method: "GET", path: "/v1.0/secrets/secretstore/nope", wantCode: 500, wantErr: "ERR_SECRET_GET", wantMsg: "failed getting secret with key nope from secret store secretstore"},
		{name: "unknown store is 401", method: "GET", path: "/v1.0/secrets/nostore/a", wantCode: 401, wantErr: "ERR_SECRET_STORE_NOT_FOUND", wantMsg: "failed finding secret store with key nostore"},
		{name: "unknown store bulk", method: "GET", path: "/v1.0/secrets/nostore/bulk", wantCode: 401, wantErr: "ERR_SECRET_STORE_NOT_FOUND"},
	})
	resp, b := do(t, "GET", srv.URL+"/v1.0/secrets/secretstore/bulk", nil, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("bulk: %d %s", resp.StatusCode, b)
	}
	var all map[string]map[string]string
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	if all["db-password"]["db-password"] != "s3cr3t-value" || all["nested:user"]["nested:user"] != "u1" {
		t.Errorf("bulk = %s", b)
	}
	if _, ok := all["denied"]; ok || strings.Contains(string(b), "never-shown") {
		t.Errorf("bulk includes a secret denied by scope: %s", b)
	}
}

func TestSecretsNotConfigured(t *testing.T) {
	s := api.NewSecrets(api.SecretsConfig{Registry: components.NewRegistry[secretstores.SecretStore]()})
	srv := serve(t, Config{Secrets: s})
	runCalls(t, srv.URL, []stateCall{
		{name: "get", method: "GET", path: "/v1.0/secrets/secretstore/a", wantCode: 500, wantErr: "ERR_SECRET_STORES_NOT_CONFIGURED"},
		{name: "bulk", method: "GET", path: "/v1.0/secrets/secretstore/bulk", wantCode: 500, wantErr: "ERR_SECRET_STORES_NOT_CONFIGURED"},
	})
}
