package vault

import (
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/components/secretstores/secretstoretest"
	"github.com/tandemrun/tandem/internal/vaulttest"
)

func md(props map[string]string) components.Metadata {
	return components.Metadata{Name: "vault", Properties: props}
}

// TestContract runs the secret store contract on a real Vault: KV v2 with
// and without a prefix, KV v1 (found by asking Vault), and each way to
// authenticate.
func TestContract(t *testing.T) {
	d := vaulttest.Start(t)
	d.Policy(t, "reader", "secret/data/*", "secret/metadata/*")
	roleID, secretID := d.AppRole(t, "reader", "token_ttl=1h")

	cases := []struct {
		name string
		// setup writes the secrets and returns the component's properties.
		setup func(t *testing.T, secrets map[string]string) map[string]string
	}{
		{"kv2 with prefix", func(t *testing.T, secrets map[string]string) map[string]string {
			prefix := "p-" + rand.Text()
			writeAll(t, d, "secret", 2, prefix+"/", secrets)
			return map[string]string{"vaultAddr": d.Addr, "vaultToken": d.Root, "vaultKVPrefix": prefix}
		}},
		{"kv2 without prefix", func(t *testing.T, secrets map[string]string) map[string]string {
			mount := d.Mount(t, "2")
			writeAll(t, d, mount, 2, "", secrets)
			return map[string]string{"vaultAddr": d.Addr, "vaultToken": d.Root, "enginePath": mount, "vaultKVUsePrefix": "false"}
		}},
		{"kv1 detected", func(t *testing.T, secrets map[string]string) map[string]string {
			mount := d.Mount(t, "1")
			writeAll(t, d, mount, 1, "dapr/", secrets)
			return map[string]string{"vaultAddr": d.Addr, "vaultToken": d.Root, "enginePath": mount}
		}},
		{"token file, reader policy", func(t *testing.T, secrets map[string]string) map[string]string {
			writeAll(t, d, "secret", 2, "dapr/", secrets)
			file := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(file, []byte(d.Token(t, "1h", "reader").ClientToken+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return map[string]string{"vaultAddr": d.Addr, "vaultTokenMountPath": file}
		}},
		{"approle", func(t *testing.T, secrets map[string]string) map[string]string {
			prefix := "ar-" + rand.Text()
			writeAll(t, d, "secret", 2, prefix+"/", secrets)
			return map[string]string{"vaultAddr": d.Addr, "vaultAuthMethod": "approle", "vaultAppRoleID": roleID,
				"vaultAppRoleSecretID": secretID, "vaultKVPrefix": prefix}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			secretstoretest.Run(t, func(t *testing.T, secrets map[string]string) (secretstores.SecretStore, components.Metadata) {
				return New(), md(tc.setup(t, secrets))
			})
		})
	}
}

// writeAll writes each secret as an entry holding {name: value}.
func writeAll(t *testing.T, d *vaulttest.Server, mount string, kv int, folder string, secrets map[string]string) {
	t.Helper()
	for name, v := range secrets {
		d.Put(t, mount, kv, folder+name, map[string]any{name: v})
	}
}

func open(t *testing.T, props map[string]string) *Store {
	t.Helper()
	s := New()
	if err := s.Init(ctxT(t), md(props)); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func get(t *testing.T, s *Store, name string, meta map[string]string) (map[string]string, error) {
	t.Helper()
	return s.GetSecret(ctxT(t), secretstores.GetRequest{Name: name, Metadata: meta})
}

// TestReads covers what the contract does not: several keys, text mode,
// values that are not strings, versions, deleted versions, folders, and
// names that are not Vault paths.
func TestReads(t *testing.T) {
	d := vaulttest.Start(t)
	prefix := "reads-" + rand.Text()
	base := map[string]string{"vaultAddr": d.Addr, "vaultToken": d.Root, "vaultKVPrefix": prefix}
	with := func(kv ...string) map[string]string {
		p := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			p[kv[i]] = kv[i+1]
		}
		return p
	}
	d.Put(t, "secret", 2, prefix+"/db", map[string]any{"user": "app", "password": "v1"})
	d.Put(t, "secret", 2, prefix+"/db", map[string]any{"user": "app", "password": "v2"})
	d.Put(t, "secret", 2, prefix+"/typed", map[string]any{"port": 5432, "tls": true, "tags": []any{"a"}})
	d.Put(t, "secret", 2, prefix+"/app/cache/redis", map[string]any{"url": "redis://x"})
	d.Put(t, "secret", 2, prefix+"/gone", map[string]any{"k": "v"})
	if _, err := d.Admin.Logical().Delete("secret/data/" + prefix + "/gone"); err != nil {
		t.Fatal(err)
	}

	s := open(t, base)
	t.Run("map: every key of the entry", func(t *testing.T) {
		got, err := get(t, s, "db", nil)
		if want := map[string]string{"user": "app", "password": "v2"}; err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("GetSecret(db) = %v, %v; want %v", got, err, want)
		}
		if !slices.Equal(s.Features(), []secretstores.Feature{secretstores.FeatureMultipleKeyValuesPerSecret}) {
			t.Errorf("Features() = %v", s.Features())
		}
	})
	t.Run("version_id", func(t *testing.T) {
		for v, want := range map[string]string{"1": "v1", "2": "v2", "0": "v2", "": "v2"} {
			got, err := get(t, s, "db", map[string]string{"version_id": v})
			if err != nil || got["password"] != want {
				t.Errorf("version_id %q: %v, %v; want password %q", v, got, err, want)
			}
		}
		if _, err := get(t, s, "db", map[string]string{"version_id": "7"}); !errors.Is(err, secretstores.ErrNotFound) {
			t.Errorf("version_id 7: err = %v, want ErrNotFound", err)
		}
		for _, v := range []string{"x", "-1", "1.5"} {
			if _, err := get(t, s, "db", map[string]string{"version_id": v}); err == nil || errors.Is(err, secretstores.ErrNotFound) {
				t.Errorf("version_id %q: err = %v, want a bad-version error", v, err)
			}
		}
	})
	t.Run("values that are not strings are JSON", func(t *testing.T) {
		got, err := get(t, s, "typed", nil)
		if want := map[string]string{"port": "5432", "tls": "true", "tags": `["a"]`}; err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("GetSecret(typed) = %v, %v; want %v", got, err, want)
		}
	})
	t.Run("deleted entry is not found", func(t *testing.T) {
		if _, err := get(t, s, "gone", nil); !errors.Is(err, secretstores.ErrNotFound) {
			t.Fatalf("GetSecret(gone) err = %v, want ErrNotFound", err)
		}
	})
	t.Run("names that are not Vault paths", func(t *testing.T) {
		for _, name := range []string{"", "../db", "app/../db", "/db", "db/", "a//b", "."} {
			if _, err := get(t, s, name, nil); !errors.Is(err, secretstores.ErrNotFound) {
				t.Errorf("GetSecret(%q) err = %v, want ErrNotFound", name, err)
			}
		}
	})
	t.Run("nested names", func(t *testing.T) {
		got, err := get(t, s, "app/cache/redis", nil)
		if err != nil || got["url"] != "redis://x" {
			t.Fatalf("GetSecret(app/cache/redis) = %v, %v", got, err)
		}
	})
	t.Run("bulk: folders walked, deleted left out, versions", func(t *testing.T) {
		all, err := s.BulkGetSecret(ctxT(t), secretstores.BulkGetRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := slices.Sorted(maps.Keys(all)), []string{"app/cache/redis", "db", "typed"}; !slices.Equal(got, want) {
			t.Fatalf("BulkGetSecret names = %v, want %v", got, want)
		}
		if all["db"]["password"] != "v2" {
			t.Errorf("bulk db = %v", all["db"])
		}
		old, err := s.BulkGetSecret(ctxT(t), secretstores.BulkGetRequest{Metadata: map[string]string{"version_id": "2"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(maps.Keys(old)); !slices.Equal(got, []string{"db"}) || old["db"]["password"] != "v2" {
			t.Errorf("bulk at version 2 = %v, want only db", old)
		}
	})
	t.Run("text: the entry's data as one value", func(t *testing.T) {
		ts := open(t, with("vaultValueType", "text"))
		got, err := get(t, ts, "app/cache/redis", nil)
		if want := map[string]string{"app/cache/redis": `{"url":"redis://x"}`}; err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("GetSecret = %v, %v; want %v", got, err, want)
		}
		if f := ts.Features(); len(f) != 0 {
			t.Errorf("Features() = %v, want none", f)
		}
	})
	t.Run("empty prefix folder", func(t *testing.T) {
		es := open(t, with("vaultKVPrefix", "nothing-here-"+rand.Text()))
		all, err := es.BulkGetSecret(ctxT(t), secretstores.BulkGetRequest{})
		if err != nil || len(all) != 0 {
			t.Fatalf("BulkGetSecret = %v, %v; want empty", all, err)
		}
	})
	t.Run("kv1: versions refused, version explicit", func(t *testing.T) {
		mount := d.Mount(t, "1")
		d.Put(t, mount, 1, "dapr/one", map[string]any{"a": "b"})
		for _, kvv := range []string{"", "1"} {
			s1 := open(t, map[string]string{"vaultAddr": d.Addr, "vaultToken": d.Root, "enginePath": mount, "vaultKVVersion": kvv})
			if got, err := get(t, s1, "one", nil); err != nil || got["a"] != "b" {
				t.Fatalf("vaultKVVersion %q: GetSecret = %v, %v", kvv, got, err)
			}
			if _, err := get(t, s1, "one", map[string]string{"version_id": "1"}); err == nil || !strings.Contains(err.Error(), "no versions") {
				t.Errorf("version_id on KV v1: err = %v", err)
			}
		}
		// Told the wrong version, it reads v2 paths, which a v1 mount
		// stores as plain entries: nothing there.
		s2 := open(t, map[string]string{"vaultAddr": d.Addr, "vaultToken": d.Root, "enginePath": mount, "vaultKVVersion": "2"})
		if _, err := get(t, s2, "one", nil); !errors.Is(err, secretstores.ErrNotFound) {
			t.Errorf("KV v1 read as v2: err = %v, want ErrNotFound", err)
		}
	})
}

// TestTokens: a refused token is an error, not "not found"; a token file
// is read again when Vault refuses the token; an approle login is renewed
// and replaced before it expires, and replaced when revoked.
func TestTokens(t *testing.T) {
	d := vaulttest.Start(t)
	d.Policy(t, "reader", "secret/data/*", "secret/metadata/*")
	d.Put(t, "secret", 2, "dapr/k", map[string]any{"k": "v"})

	t.Run("revoked static token", func(t *testing.T) {
		tok := d.Token(t, "1h", "reader")
		s := open(t, map[string]string{"vaultAddr": d.Addr, "vaultToken": tok.ClientToken})
		if _, err := get(t, s, "k", nil); err != nil {
			t.Fatal(err)
		}
		if err := d.Admin.Auth().Token().RevokeOrphan(tok.ClientToken); err != nil {
			t.Fatal(err)
		}
		_, err := get(t, s, "k", nil)
		if err == nil || errors.Is(err, secretstores.ErrNotFound) || !strings.Contains(err.Error(), "403") {
			t.Fatalf("GetSecret with a revoked token: err = %v, want a 403 error", err)
		}
		if strings.Contains(err.Error(), tok.ClientToken) {
			t.Errorf("error %q shows the token", err)
		}
	})
	t.Run("token file read again", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "token")
		first := d.Token(t, "1h", "reader")
		if err := os.WriteFile(file, []byte(first.ClientToken), 0o600); err != nil {
			t.Fatal(err)
		}
		s := open(t, map[string]string{"vaultAddr": d.Addr, "vaultTokenMountPath": file})
		if err := d.Admin.Auth().Token().RevokeOrphan(first.ClientToken); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(d.Token(t, "1h", "reader").ClientToken), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := get(t, s, "k", nil); err != nil || got["k"] != "v" {
			t.Fatalf("GetSecret after the token file changed = %v, %v", got, err)
		}
	})
	t.Run("approle renewed and logged in again", func(t *testing.T) {
		roleID, secretID := d.AppRole(t, "reader", "token_ttl=2s", "token_max_ttl=5s")
		s := open(t, map[string]string{"vaultAddr": d.Addr, "vaultAuthMethod": "approle",
			"vaultAppRoleID": roleID, "vaultAppRoleSecretID": secretID})
		tokens := map[string]bool{}
		for end := time.Now().Add(8 * time.Second); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
			if got, err := get(t, s, "k", nil); err != nil || got["k"] != "v" {
				t.Fatalf("GetSecret = %v, %v", got, err)
			}
			tokens[currentToken(s)] = true
		}
		if len(tokens) < 2 {
			t.Errorf("one token for 8s of a role with token_max_ttl=5s")
		}
	})
	t.Run("approle token revoked", func(t *testing.T) {
		secretFile := filepath.Join(t.TempDir(), "secret-id")
		roleID, secretID := d.AppRole(t, "reader")
		if err := os.WriteFile(secretFile, []byte(secretID+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s := open(t, map[string]string{"vaultAddr": d.Addr, "vaultAuthMethod": "approle",
			"vaultAppRoleID": roleID, "vaultAppRoleSecretIDPath": secretFile})
		if err := d.Admin.Auth().Token().RevokeOrphan(currentToken(s)); err != nil {
			t.Fatal(err)
		}
		if got, err := get(t, s, "k", nil); err != nil || got["k"] != "v" {
			t.Fatalf("GetSecret after the login token was revoked = %v, %v", got, err)
		}
	})
	t.Run("bad approle secret id", func(t *testing.T) {
		roleID, _ := d.AppRole(t, "reader")
		err := New().Init(ctxT(t), md(map[string]string{"vaultAddr": d.Addr, "vaultAuthMethod": "approle",
			"vaultAppRoleID": roleID, "vaultAppRoleSecretID": "wrong"}))
		if !errors.Is(err, errAuth) || !strings.Contains(err.Error(), `"vault"`) {
			t.Fatalf("Init with a wrong secret ID: err = %v", err)
		}
	})
}

func currentToken(s *Store) string {
	c, _ := s.get()
	c.auth.mu.Lock()
	defer c.auth.mu.Unlock()
	return c.auth.token
}

// TestInitNeedsAVaultThatServes: Init fails while Vault is unreachable or
// sealed (the sidecar retries it), and the store refuses reads before Init.
func TestInitNeedsAVaultThatServes(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		err := New().Init(ctxT(t), md(map[string]string{"vaultAddr": "http://127.0.0.1:" + vaulttest.FreePort(t), "vaultToken": "t"}))
		if err == nil || !strings.Contains(err.Error(), `"vault"`) || components.IsPermanent(err) {
			t.Fatalf("Init against a closed port: err = %v, want one to retry", err)
		}
	})
	t.Run("CA that does not parse", func(t *testing.T) {
		err := New().Init(ctxT(t), md(map[string]string{"vaultToken": "t", "caPem": "not a certificate"}))
		if !components.IsPermanent(err) {
			t.Fatalf("Init with a bad caPem: err = %v, want a permanent error", err)
		}
	})
	t.Run("sealed", func(t *testing.T) {
		d := vaulttest.Start(t)
		if err := d.Admin.Sys().Seal(); err != nil {
			t.Fatal(err)
		}
		err := New().Init(ctxT(t), md(map[string]string{"vaultAddr": d.Addr, "vaultToken": d.Root}))
		if err == nil || !strings.Contains(err.Error(), "sealed") {
			t.Fatalf("Init against a sealed vault: err = %v", err)
		}
	})
	t.Run("before Init", func(t *testing.T) {
		s := New()
		if _, err := s.GetSecret(context.Background(), secretstores.GetRequest{Name: "x"}); err == nil {
			t.Fatal("GetSecret before Init succeeded")
		}
	})
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	want    config
	wantErr string
}{
	{"defaults", map[string]string{"vaultToken": "t"}, config{
		Addr: "https://127.0.0.1:8200", EnginePath: "secret", Prefix: "dapr",
		Auth: authConfig{Method: "token", Token: "t"},
	}, ""},
	{"all of Dapr's", map[string]string{
		"vaultAddr": "http://vault:8200/", "vaultTokenMountPath": "/run/token", "caPem": "PEM", "caPath": "/ca", "caCert": "/ca.pem",
		"skipVerify": "true", "tlsServerName": "v.internal", "enginePath": "/kv/", "vaultKVPrefix": "/team/app/",
		"vaultValueType": "text", "vaultNamespace": "ns1",
	}, config{
		Addr: "http://vault:8200", Namespace: "ns1", EnginePath: "kv", Prefix: "team/app", Text: true,
		TLS:  tlsConfig{CAPem: "PEM", CAPath: "/ca", CACert: "/ca.pem", SkipVerify: true, ServerName: "v.internal"},
		Auth: authConfig{Method: "token", TokenPath: "/run/token"},
	}, ""},
	{"no prefix", map[string]string{"vaultToken": "t", "vaultKVUsePrefix": "false", "vaultKVPrefix": "ignored", "vaultKVVersion": "1"}, config{
		Addr: "https://127.0.0.1:8200", EnginePath: "secret", KVVersion: 1, Auth: authConfig{Method: "token", Token: "t"},
	}, ""},
	{"approle", map[string]string{"vaultAuthMethod": "AppRole", "vaultAppRoleID": "r", "vaultAppRoleSecretIDPath": "/s", "vaultAppRoleMountPath": "ar/"}, config{
		Addr: "https://127.0.0.1:8200", EnginePath: "secret", Prefix: "dapr",
		Auth: authConfig{Method: "approle", Mount: "ar", Role: "r", SecretIDPath: "/s"},
	}, ""},
	{"kubernetes", map[string]string{"vaultAuthMethod": "kubernetes", "vaultKubernetesRole": "app"}, config{
		Addr: "https://127.0.0.1:8200", EnginePath: "secret", Prefix: "dapr",
		Auth: authConfig{Method: "kubernetes", Mount: "kubernetes", Role: "app", JWTPath: defaultServiceAccountJWT},
	}, ""},
	{"no token", map[string]string{}, config{}, "vaultToken"},
	{"two tokens", map[string]string{"vaultToken": "t", "vaultTokenMountPath": "/f"}, config{}, "both set"},
	{"token with approle", map[string]string{"vaultAuthMethod": "approle", "vaultAppRoleID": "r", "vaultToken": "t"}, config{}, "token only"},
	{"approle without role", map[string]string{"vaultAuthMethod": "approle"}, config{}, "vaultAppRoleID"},
	{"two secret ids", map[string]string{"vaultAuthMethod": "approle", "vaultAppRoleID": "r", "vaultAppRoleSecretID": "s", "vaultAppRoleSecretIDPath": "/s"}, config{}, "both set"},
	{"kubernetes without role", map[string]string{"vaultAuthMethod": "kubernetes"}, config{}, "vaultKubernetesRole"},
	{"unknown auth", map[string]string{"vaultAuthMethod": "ldap", "vaultToken": "t"}, config{}, "vaultAuthMethod"},
	{"bad value type", map[string]string{"vaultToken": "t", "vaultValueType": "json"}, config{}, "vaultValueType"},
	{"bad kv version", map[string]string{"vaultToken": "t", "vaultKVVersion": "3"}, config{}, "vaultKVVersion"},
	{"bad use prefix", map[string]string{"vaultToken": "t", "vaultKVUsePrefix": "maybe"}, config{}, "vaultKVUsePrefix"},
	{"bad skip verify", map[string]string{"vaultToken": "t", "skipVerify": "yes"}, config{}, "skipVerify"},
	{"bad address", map[string]string{"vaultToken": "t", "vaultAddr": "vault:8200"}, config{}, "vaultAddr"},
	{"dot dot prefix", map[string]string{"vaultToken": "t", "vaultKVPrefix": "a/../b"}, config{}, "path segments"},
	{"empty engine", map[string]string{"vaultToken": "t", "enginePath": "/"}, config{}, "enginePath"},
}

func TestParseConfig(t *testing.T) {
	for _, tc := range parseConfigCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig(md(tc.props))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), `"vault"`) {
					t.Fatalf("err = %v, want one naming %q and the component", err, tc.wantErr)
				}
				// Init says so without contacting Vault, and the sidecar does not retry.
				if err := New().Init(context.Background(), md(tc.props)); !components.IsPermanent(err) {
					t.Errorf("Init: err = %v, want a permanent error", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("parseConfig = %+v, %v\nwant %+v", got, err, tc.want)
			}
		})
	}
}

// TestInitTokenFile: a token file that is missing or empty
// fails Init with the file named and no token shown.
func TestInitTokenFile(t *testing.T) {
	d := vaulttest.Start(t)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(t.TempDir(), "missing"), empty} {
		err := New().Init(ctxT(t), md(map[string]string{"vaultAddr": d.Addr, "vaultTokenMountPath": path}))
		if !errors.Is(err, errAuth) {
			t.Errorf("token file %s: err = %v, want a login error", path, err)
		}
	}
}

// ctxT is a context for one call of a test.
func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
