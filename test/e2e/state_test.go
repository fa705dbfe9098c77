package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// stateSidecar starts a sidecar (no app) with an in-memory state store
// "statestore", a sqlite state store "sqlstore", a local-file secret store
// "secretstore" and a Configuration whose secrets.scopes denies secret
// "denied".
func stateSidecar(t *testing.T) *framework.Sidecar {
	t.Helper()
	dir := t.TempDir()
	res := filepath.Join(dir, "resources")
	if err := os.Mkdir(res, 0o755); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(dir, "secrets.json")
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(secrets, `{"db-password":"s3cr3t","denied":"hidden"}`)
	write(filepath.Join(res, "state.yaml"), `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.in-memory
  version: v1
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: sqlstore
spec:
  type: state.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: "`+filepath.Join(dir, "state.db")+`"
`)
	write(filepath.Join(res, "secrets.yaml"), `apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: secretstore
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: "`+secrets+`"
`)
	cfg := filepath.Join(dir, "config.yaml")
	write(cfg, `apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: e2e
spec:
  secrets:
    scopes:
    - storeName: secretstore
      defaultAccess: allow
      deniedSecrets: ["denied"]
`)
	return framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "stateapp", ResourcesDir: res, Args: []string{"--config", cfg},
	})
}

// waitStores waits until every store answers (components initialise in the
// background after the sidecar is up).
func waitStores(t *testing.T, c dapr.Client, stores ...string) {
	t.Helper()
	ctx := context.Background()
	for _, s := range stores {
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := c.GetState(ctx, s, "probe", nil)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("store %s never became ready: %v", s, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestStateWithGoSDK(t *testing.T) {
	sc := stateSidecar(t)
	c, err := dapr.NewClientWithAddress(sc.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitStores(t, c, "statestore", "sqlstore")
	ctx := context.Background()

	for _, store := range []string{"statestore", "sqlstore"} {
		t.Run(store, func(t *testing.T) {
			if err := c.SaveState(ctx, store, "order-1", []byte(`{"qty":1}`), map[string]string{"contentType": "application/json"}); err != nil {
				t.Fatal(err)
			}
			item, err := c.GetState(ctx, store, "order-1", nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(item.Value) != `{"qty":1}` || item.Etag == "" {
				t.Fatalf("get = %q etag %q", item.Value, item.Etag)
			}
			// A stale etag is refused and changes nothing.
			err = c.SaveStateWithETag(ctx, store, "order-1", []byte(`{"qty":2}`), "999999", nil)
			if status.Code(err) != codes.Aborted {
				t.Fatalf("stale etag save: %v, want Aborted", err)
			}
			if got, _ := c.GetState(ctx, store, "order-1", nil); string(got.Value) != `{"qty":1}` {
				t.Fatalf("stale save wrote %q", got.Value)
			}
			if err := c.SaveStateWithETag(ctx, store, "order-1", []byte(`{"qty":2}`), item.Etag, nil); err != nil {
				t.Fatal(err)
			}
			err = c.DeleteStateWithETag(ctx, store, "order-1", &dapr.ETag{Value: item.Etag}, nil, nil)
			if status.Code(err) != codes.Aborted {
				t.Fatalf("stale etag delete: %v, want Aborted", err)
			}

			// Binary values come back byte for byte.
			bin := []byte{0, 1, 2, 0xff}
			if err := c.SaveState(ctx, store, "bin", bin, nil); err != nil {
				t.Fatal(err)
			}
			err = c.ExecuteStateTransaction(ctx, store, nil, []*dapr.StateOperation{
				{Type: dapr.StateOperationTypeUpsert, Item: &dapr.SetStateItem{Key: "tx-1", Value: []byte("one")}},
				{Type: dapr.StateOperationTypeDelete, Item: &dapr.SetStateItem{Key: "order-1"}},
			})
			if err != nil {
				t.Fatal(err)
			}
			items, err := c.GetBulkState(ctx, store, []string{"bin", "tx-1", "order-1"}, nil, 3)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, it := range items {
				got[it.Key] = string(it.Value)
			}
			if got["bin"] != string(bin) || got["tx-1"] != "one" || got["order-1"] != "" || len(got) != 3 {
				t.Fatalf("bulk = %q", got)
			}
			if err := c.DeleteState(ctx, store, "tx-1", nil); err != nil {
				t.Fatal(err)
			}
			if it, _ := c.GetState(ctx, store, "tx-1", nil); len(it.Value) != 0 {
				t.Fatalf("deleted key still has %q", it.Value)
			}
		})
	}

	// The same data over HTTP, with Dapr's status codes.
	base := sc.HTTPURL() + "/v1.0/state/statestore"
	if resp, b := do(t, "POST", base, strings.NewReader(`[{"key":"h1","value":{"a":1}}]`), nil); resp.StatusCode != 204 {
		t.Fatalf("http save: %d %s", resp.StatusCode, b)
	}
	if resp, b := do(t, "GET", base+"/h1", nil, nil); resp.StatusCode != 200 || string(b) != `{"a":1}` || resp.Header.Get("ETag") == "" {
		t.Fatalf("http get: %d %s", resp.StatusCode, b)
	}
	if it, err := c.GetState(ctx, "statestore", "h1", nil); err != nil || string(it.Value) != `{"a":1}` {
		t.Fatalf("grpc get of http save: %q %v", it.Value, err)
	}
	checks := []struct {
		method, path, body string
		code               int
		errCode            string
	}{
		{"GET", "/v1.0/state/statestore/missing", "", 204, ""},
		{"POST", "/v1.0/state/statestore", `[{"key":"x","value":1},{"key":`, 400, "ERR_MALFORMED_REQUEST"},
		{"POST", "/v1.0/state/statestore", `[{"key":"a||b","value":1}]`, 400, "ERR_MALFORMED_REQUEST"},
		{"GET", "/v1.0/state/nostore/a", "", 400, "ERR_STATE_STORE_NOT_FOUND"},
		{"GET", "/v1.0/state/statestore/x", "", 204, ""}, // the malformed batch wrote nothing
		{"GET", "/v1.0/secrets/secretstore/denied", "", 403, "ERR_PERMISSION_DENIED"},
		{"GET", "/v1.0/secrets/nostore/a", "", 401, "ERR_SECRET_STORE_NOT_FOUND"},
	}
	for _, ck := range checks {
		resp, b := do(t, ck.method, sc.HTTPURL()+ck.path, strings.NewReader(ck.body), nil)
		if resp.StatusCode != ck.code || (ck.errCode != "" && !strings.Contains(string(b), ck.errCode)) {
			t.Errorf("%s %s: %d %s, want %d %s", ck.method, ck.path, resp.StatusCode, b, ck.code, ck.errCode)
		}
	}
}

func TestSecretsWithGoSDK(t *testing.T) {
	sc := stateSidecar(t)
	c, err := dapr.NewClientWithAddress(sc.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var data map[string]string
	deadline := time.Now().Add(15 * time.Second)
	for {
		data, err = c.GetSecret(ctx, "secretstore", "db-password", nil)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || data["db-password"] != "s3cr3t" {
		t.Fatalf("secret = %v, %v", data, err)
	}
	_, err = c.GetSecret(ctx, "secretstore", "denied", nil)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("denied secret: %v", err)
	}
	all, err := c.GetBulkSecret(ctx, "secretstore", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := all["denied"]; ok || all["db-password"]["db-password"] != "s3cr3t" {
		t.Fatalf("bulk = %v", all)
	}
	if strings.Contains(sc.Output(), "s3cr3t") {
		t.Errorf("a secret value appears in the sidecar's log:\n%s", sc.Output())
	}
}
