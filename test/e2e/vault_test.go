package e2e

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dapr "github.com/dapr/go-sdk/client"

	"github.com/tandemrun/tandem/internal/vaulttest"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestVaultSecretsWithGoSDK runs secretstores.hashicorp.vault in a real
// sidecar against a real Vault, read with the Dapr Go SDK. The sidecar
// starts while Vault is down: it serves, answers ERR_SECRET_STORE_NOT_READY,
// and once Vault is up the store starts by itself, and so does a state
// store whose connection string is a secretKeyRef into Vault.
func TestVaultSecretsWithGoSDK(t *testing.T) {
	vaulttest.Binary(t) // skip before starting anything without it
	port, root := vaulttest.FreePort(t), "root-"+rand.Text()
	dir := t.TempDir()
	res := filepath.Join(dir, "resources")
	if err := os.Mkdir(res, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(res, "vault.yaml"), []byte(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: vault
spec:
  type: secretstores.hashicorp.vault
  version: v1
  metadata:
  - name: vaultAddr
    value: http://127.0.0.1:`+port+`
  - name: vaultToken
    value: `+root+`
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: kv
spec:
  type: state.sqlite
  version: v1
  metadata:
  - name: connectionString
    secretKeyRef:
      name: sqlite
      key: path
auth:
  secretStore: vault
`), 0o600); err != nil {
		t.Fatal(err)
	}
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{AppID: "vaultapp", ResourcesDir: res})

	resp, err := http.Get(sc.HTTPURL() + "/v1.0/secrets/vault/db")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "ERR_SECRET_STORE_NOT_READY") {
		t.Fatalf("GET /v1.0/secrets/vault/db with Vault down: %d %s, want 503 ERR_SECRET_STORE_NOT_READY", resp.StatusCode, body)
	}

	v := vaulttest.StartWith(t, vaulttest.Options{Port: port, Root: root})
	v.Put(t, "secret", 2, "dapr/db", map[string]any{"user": "app", "password": "first-Zq9"})
	v.Put(t, "secret", 2, "dapr/db", map[string]any{"user": "app", "password": "second-Xk7"})
	v.Put(t, "secret", 2, "dapr/sqlite", map[string]any{"path": filepath.Join(dir, "state.db")})

	c, err := dapr.NewClientWithAddress(sc.GRPCAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var data map[string]string
	for {
		if data, err = c.GetSecret(ctx, "vault", "db", nil); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || len(data) != 2 || data["user"] != "app" || data["password"] != "second-Xk7" {
		t.Fatalf("GetSecret(db) after Vault came up = %v, %v\n%s", data, err, sc.Output())
	}
	if data, err = c.GetSecret(ctx, "vault", "db", map[string]string{"version_id": "1"}); err != nil || data["password"] != "first-Zq9" {
		t.Errorf("GetSecret(db, version_id 1) = %v, %v", data, err)
	}
	all, err := c.GetBulkSecret(ctx, "vault", nil)
	if err != nil || all["db"]["password"] != "second-Xk7" || all["sqlite"]["path"] == "" {
		t.Errorf("GetBulkSecret = %v, %v", all, err)
	}
	if _, err := c.GetSecret(ctx, "vault", "no-such-secret", nil); err == nil {
		t.Error("GetSecret(no-such-secret) succeeded")
	}

	// The state store got its connection string from Vault.
	for {
		if err = c.SaveState(ctx, "kv", "k", []byte("v"), nil); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("SaveState on the store configured from Vault: %v\n%s", err, sc.Output())
	}
	if _, err := os.Stat(filepath.Join(dir, "state.db")); err != nil {
		t.Errorf("the state store did not open the file named in Vault: %v", err)
	}
	for _, secret := range []string{"first-Zq9", "second-Xk7", root} {
		if strings.Contains(sc.Output(), secret) {
			t.Errorf("the sidecar's log shows %q", secret)
		}
	}
}
