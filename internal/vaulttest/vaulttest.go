// Package vaulttest starts a real HashiCorp Vault for tests: `vault server
// -dev` (in memory, unsealed, KV v2 at secret/) on a loopback port, with a
// root token and an API client holding it, stopped when the test ends.
//
//	v := vaulttest.Start(t)
//	v.Put(t, "secret", 2, "dapr/db", map[string]any{"password": "x"})
//	// a component with vaultAddr v.Addr and vaultToken v.Root reads it
//
// The binary is $TANDEM_VAULT, else the one scripts/build-vault.sh builds
// into ~/.cache (from the Go module proxy). Without it the test skips and
// says how to get it; with CI=true it fails.
package vaulttest

import (
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

// Version is the Vault that scripts/build-vault.sh builds by default.
const Version = "v1.21.4"

// Binary returns the path of the vault binary, or skips the test (fails it
// under CI=true) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := find()
	if err == nil {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err.Error())
	return ""
}

func find() (string, error) {
	bin := os.Getenv("TANDEM_VAULT")
	if bin == "" {
		home, _ := os.UserHomeDir()
		bin = filepath.Join(home, ".cache", "tandem", "vault", Version, "vault")
	}
	if fi, err := os.Stat(bin); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return bin, nil
	}
	return "", fmt.Errorf("no vault binary at %s: build it with `bash scripts/build-vault.sh` (from the Go module proxy; a long first build) or set TANDEM_VAULT", bin)
}

// Server is a running dev-mode Vault.
type Server struct {
	// Addr is its address, http://127.0.0.1:port.
	Addr string
	// Root is the root token, and Admin a client holding it.
	Root  string
	Admin *api.Client

	log  *syncbuf.Buffer
	stop func()
}

// Start starts a Vault on a free loopback port.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// Options of StartWith.
type Options struct {
	// Port is the loopback port (default: a free one), and Root the root
	// token (default: a random one): chosen before the server starts, for
	// a test that configures a component before Vault is up.
	Port, Root string
}

// StartWith starts a Vault with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	bin := Binary(t)
	if o.Port == "" {
		o.Port = FreePort(t)
	}
	if o.Root == "" {
		o.Root = "root-" + rand.Text()
	}
	port := o.Port
	s := &Server{Addr: "http://127.0.0.1:" + port, Root: o.Root, log: &syncbuf.Buffer{}}
	cmd := exec.Command(bin, "server", "-dev", "-dev-root-token-id="+s.Root,
		"-dev-listen-address=127.0.0.1:"+port, "-dev-no-store-token")
	// Without the caller's VAULT_* settings, and with a HOME of its own.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+t.TempDir())
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start vault: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("vault server output:\n%s", s.log.String())
		}
	})

	s.Admin = s.Client(t, s.Root)
	deadline := time.Now().Add(60 * time.Second)
	for {
		h, err := s.Admin.Sys().Health()
		if err == nil && h.Initialized && !h.Sealed {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("vault exited: %v\n%s", err, s.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("vault not up after 60s (last: %v)\n%s", err, s.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The dev server mounts KV v2 at secret/ and upgrades it a moment after
	// it first answers.
	for {
		_, err := s.Admin.Logical().Write("secret/data/vaulttest-probe", map[string]any{"data": map[string]any{"x": "y"}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("secret/ not writable after 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s
}

// Stop stops the server before the test ends (a "Vault is down" test).
func (s *Server) Stop() { s.stop() }

// Client returns a client of the server with a token; its idle connections
// are closed when the test ends.
func (s *Server) Client(t testing.TB, token string) *api.Client {
	t.Helper()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c, err := api.NewClient(&api.Config{Address: s.Addr, HttpClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	t.Cleanup(tr.CloseIdleConnections)
	return c
}

// Mount enables a KV engine, version "1" or "2", at a fresh path and
// returns the path.
func (s *Server) Mount(t testing.TB, version string) string {
	t.Helper()
	path := "kv" + version + "-" + strings.ToLower(rand.Text()[:8])
	if err := s.Admin.Sys().Mount(path, &api.MountInput{Type: "kv", Options: map[string]string{"version": version}}); err != nil {
		t.Fatalf("mount %s: %v", path, err)
	}
	// A new KV v2 mount upgrades itself before it serves writes.
	for deadline := time.Now().Add(30 * time.Second); version == "2"; time.Sleep(50 * time.Millisecond) {
		_, err := s.Admin.Logical().Write(path+"/data/vaulttest-probe", map[string]any{"data": map[string]any{}})
		if err == nil {
			_, _ = s.Admin.Logical().Delete(path + "/metadata/vaulttest-probe")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("KV v2 mount %s not writable after 30s: %v", path, err)
		}
	}
	return path
}

// Put writes an entry of the KV engine at mount (kv: its version, 1 or 2).
func (s *Server) Put(t testing.TB, mount string, kv int, name string, data map[string]any) {
	t.Helper()
	var err error
	if kv == 2 {
		_, err = s.Admin.Logical().Write(mount+"/data/"+name, map[string]any{"data": data})
	} else {
		_, err = s.Admin.Logical().Write(mount+"/"+name, data)
	}
	if err != nil {
		t.Fatalf("write %s/%s: %v", mount, name, err)
	}
}

// Token creates a token with the policies (not the default policy unless
// listed) and a TTL ("1h").
func (s *Server) Token(t testing.TB, ttl string, policies ...string) *api.SecretAuth {
	t.Helper()
	sec, err := s.Admin.Auth().Token().Create(&api.TokenCreateRequest{Policies: policies, TTL: ttl, NoDefaultPolicy: true})
	if err != nil {
		t.Fatal(err)
	}
	return sec.Auth
}

// Policy writes a policy that reads and lists the paths (globs).
func (s *Server) Policy(t testing.TB, name string, paths ...string) {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "path %q { capabilities = [\"read\", \"list\"] }\n", p)
	}
	if err := s.Admin.Sys().PutPolicy(name, b.String()); err != nil {
		t.Fatal(err)
	}
}

// AppRole enables the approle auth method at approle/ (once) and makes a
// role with the policy and settings ("token_ttl=2s"); it returns the
// role's ID and a secret ID.
func (s *Server) AppRole(t testing.TB, policy string, settings ...string) (roleID, secretID string) {
	t.Helper()
	auths, err := s.Admin.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := auths["approle/"]; !ok {
		if err := s.Admin.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
			t.Fatal(err)
		}
	}
	role := "r-" + strings.ToLower(rand.Text()[:10])
	body := map[string]any{"token_policies": policy}
	for _, kv := range settings {
		k, v, _ := strings.Cut(kv, "=")
		body[k] = v
	}
	if _, err := s.Admin.Logical().Write("auth/approle/role/"+role, body); err != nil {
		t.Fatal(err)
	}
	r, err := s.Admin.Logical().Read("auth/approle/role/" + role + "/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := s.Admin.Logical().Write("auth/approle/role/"+role+"/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.Data["role_id"].(string), sid.Data["secret_id"].(string)
}

// FreePort returns a loopback port nothing listens on (at the moment).
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}
