package vault

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/tandemrun/tandem/internal/syncbuf"
)

// vaultVersion is the Vault that scripts/build-vault.sh builds by default.
const vaultVersion = "v1.21.4"

// vaultBinary finds the vault binary: $TANDEM_VAULT, else where
// scripts/build-vault.sh puts it. Without it the test skips, or fails
// under CI=true.
func vaultBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("TANDEM_VAULT")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "tandem", "vault", vaultVersion, "vault")
	}
	if fi, err := os.Stat(bin); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return bin
	}
	msg := "no vault binary at " + bin + ": build it with scripts/build-vault.sh (a long first build from the Go module proxy) or set TANDEM_VAULT"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// devServer is a real Vault in dev mode (in memory, unsealed, KV v2 at
// secret/), with a root token and an API client holding it.
type devServer struct {
	addr  string // http://127.0.0.1:port
	root  string
	admin *api.Client
	log   *syncbuf.Buffer
}

// startVault starts `vault server -dev` on a free loopback port and stops
// it when the test ends.
func startVault(t *testing.T) *devServer {
	t.Helper()
	bin := vaultBinary(t)
	port := freePort(t)
	d := &devServer{addr: "http://127.0.0.1:" + port, root: "root-" + rand.Text(), log: &syncbuf.Buffer{}}
	home := t.TempDir()
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+d.root,
		"-dev-listen-address=127.0.0.1:"+port, "-dev-no-store-token")
	// The server's environment without the caller's VAULT_* settings, and a
	// HOME of its own.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+home)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start vault: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("vault server output:\n%s", d.log.String())
		}
	})

	d.admin = d.client(t, d.root)
	deadline := time.Now().Add(60 * time.Second)
	for {
		h, err := d.admin.Sys().Health()
		if err == nil && h.Initialized && !h.Sealed {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("vault exited: %v\n%s", err, d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault not up after 60s (last: %v)\n%s", err, d.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The dev server mounts KV v2 at secret/ a moment after it answers.
	for time.Now().Before(deadline) {
		if _, err := d.admin.Logical().Write("secret/data/tandem-probe", map[string]any{"data": map[string]any{"x": "y"}}); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d
}

// client returns an API client of the server with a token; its idle
// connections are closed when the test ends.
func (d *devServer) client(t *testing.T, token string) *api.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c, err := api.NewClient(&api.Config{Address: d.addr, HttpClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// mount enables a KV engine (version "1" or "2") at a fresh path and
// returns the path.
func (d *devServer) mount(t *testing.T, version string) string {
	t.Helper()
	path := "kv" + version + "-" + strings.ToLower(rand.Text()[:8])
	if err := d.admin.Sys().Mount(path, &api.MountInput{Type: "kv", Options: map[string]string{"version": version}}); err != nil {
		t.Fatalf("mount %s: %v", path, err)
	}
	// A new KV v2 mount upgrades itself before it serves writes.
	deadline := time.Now().Add(30 * time.Second)
	for version == "2" && time.Now().Before(deadline) {
		if _, err := d.admin.Logical().List(path + "/metadata/"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return path
}

// put writes an entry of a KV engine mounted at mount (version 1 or 2).
func (d *devServer) put(t *testing.T, mount string, kv int, name string, data map[string]any) {
	t.Helper()
	var err error
	if kv == 2 {
		_, err = d.admin.Logical().Write(mount+"/data/"+name, map[string]any{"data": data})
	} else {
		_, err = d.admin.Logical().Write(mount+"/"+name, data)
	}
	if err != nil {
		t.Fatalf("write %s/%s: %v", mount, name, err)
	}
}

// token creates a token with the given policies (and no default policy
// unless listed) and a TTL.
func (d *devServer) token(t *testing.T, ttl string, policies ...string) *api.SecretAuth {
	t.Helper()
	s, err := d.admin.Auth().Token().Create(&api.TokenCreateRequest{Policies: policies, TTL: ttl, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	return s.Auth
}

// policy writes a policy reading (and listing) everything under paths.
func (d *devServer) policy(t *testing.T, name string, paths ...string) {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "path %q { capabilities = [\"read\", \"list\"] }\n", p)
	}
	if err := d.admin.Sys().PutPolicy(name, b.String()); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// ctxT is a context for one call of a test.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
