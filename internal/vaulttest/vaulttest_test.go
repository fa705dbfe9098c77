package vaulttest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindPrefersTandemVault(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vault")
	if err := os.WriteFile(bin, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TANDEM_VAULT", bin)
	if got, err := find(); err != nil || got != bin {
		t.Fatalf("find() = %q, %v; want %q", got, err, bin)
	}
	// Not executable: not a binary.
	if err := os.Chmod(bin, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := find(); err == nil || !strings.Contains(err.Error(), "scripts/build-vault.sh") {
		t.Fatalf("find() of a file that is not executable: %v", err)
	}
}

func TestBinarySkipsWithoutVault(t *testing.T) {
	t.Setenv("TANDEM_VAULT", filepath.Join(t.TempDir(), "missing"))
	t.Setenv("CI", "")
	ok := t.Run("inner", func(t *testing.T) {
		Binary(t)
		t.Error("Binary returned without a binary")
	})
	if !ok {
		t.Fatal("the inner test failed instead of skipping")
	}
}

// TestServer starts a real Vault and checks the helpers against it.
func TestServer(t *testing.T) {
	s := Start(t)
	s.Policy(t, "reader", "secret/data/*")
	s.Put(t, "secret", 2, "a/b", map[string]any{"k": "v"})
	c := s.Client(t, s.Token(t, "1h", "reader").ClientToken)
	got, err := c.Logical().Read("secret/data/a/b")
	if err != nil || got.Data["data"].(map[string]any)["k"] != "v" {
		t.Fatalf("read with a reader token: %v, %v", got, err)
	}
	v1 := s.Mount(t, "1")
	s.Put(t, v1, 1, "x", map[string]any{"k": "1"})
	if got, err := s.Admin.Logical().Read(v1 + "/x"); err != nil || got.Data["k"] != "1" {
		t.Fatalf("KV v1 read: %v, %v", got, err)
	}
	roleID, secretID := s.AppRole(t, "reader")
	login, err := s.Admin.Logical().Write("auth/approle/login", map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil || login.Auth == nil {
		t.Fatalf("approle login: %v, %v", login, err)
	}
	s.Stop()
	if _, err := s.Admin.Sys().Health(); err == nil {
		t.Fatal("Vault answers after Stop")
	}
}
