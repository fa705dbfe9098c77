package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/sentry/client"
)

// TestBinary builds sentry, starts it on an empty credentials folder and
// checks that it writes the CA files, answers /healthz and /metrics, issues
// a short-lived certificate to a holder of a join token, refuses a wrong
// token, and exits 0 on SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sentry")
	build := exec.Command(goBin, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	creds := filepath.Join(dir, "creds")
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# tokens\nt0ken-orders orders\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: daprsystem\nspec:\n  mtls:\n    workloadCertTTL: 1h\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-issuer-credentials", creds, "--config", cfg, "--workload-cert-ttl", "5s",
		"--listen-address", "127.0.0.1", "--port", "0",
		"--healthz-listen-address", "127.0.0.1", "--healthz-port", "0",
		"--metrics-listen-address", "127.0.0.1", "--metrics-port", "0",
		"--join-token-file", tokens, "--log-as-json", "--token-audience", "x")
	cmd.Env = append(os.Environ(), "NAMESPACE=tandem-system")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})

	// Read the JSON log until the "sentry listening" line gives the addresses.
	lines := make(chan map[string]any, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	var listening map[string]any
	var sawIgnored bool
	timeout := time.After(20 * time.Second)
	for listening == nil {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("sentry exited before listening")
			}
			if m["flag"] == "--token-audience" {
				sawIgnored = true
			}
			if m["msg"] == "sentry listening" {
				listening = m
			}
		case <-timeout:
			t.Fatal("sentry did not report its addresses")
		}
	}
	go func() {
		for range lines { // drain so the process never blocks on stdout
		}
	}()
	if !sawIgnored {
		t.Error("--token-audience not logged as ignored")
	}
	if got := listening["sentry_spiffe_id"]; got != "spiffe://localhost/ns/tandem-system/dapr-sentry" {
		t.Errorf("sentry_spiffe_id = %v", got)
	}

	for _, f := range []string{"ca.crt", "issuer.crt", "issuer.key"} {
		if _, err := os.Stat(filepath.Join(creds, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	// "sentry listening" is logged as the servers start: /healthz answers
	// 503 until the CA service serves, then 200.
	if body := healthy(t, "http://"+listening["healthz_address"].(string)+"/healthz", 10*time.Second); !strings.Contains(body, "ok") {
		t.Errorf("healthz body = %q", body)
	}

	rootPEM, err := os.ReadFile(filepath.Join(creds, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	anchors, err := client.ParseTrustAnchors(rootPEM)
	if err != nil {
		t.Fatal(err)
	}
	sentryID, err := client.SentryID("localhost", "tandem-system")
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://public/ns/default/orders")
	for _, tt := range []struct {
		token  string
		wantOK bool
	}{{"t0ken-orders", true}, {"wrong", false}} {
		cl, err := client.New(client.Config{Address: listening["grpc_address"].(string), TrustAnchors: anchors, SentryID: sentryID, Token: tt.token, MaxAttempts: 2})
		if err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		csr, err := identity.NewCSR(key, id)
		if err != nil {
			t.Fatal(err)
		}
		issued, err := cl.Issue(context.Background(), id, csr)
		_ = cl.Close()
		if !tt.wantOK {
			if status.Code(errorsUnwrapAll(err)) != codes.PermissionDenied {
				t.Errorf("token %q: err = %v, want PermissionDenied", tt.token, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("token %q: %v", tt.token, err)
		}
		if left := time.Until(issued.ValidUntil); left <= 0 || left > 5*time.Second {
			t.Errorf("certificate valid for %v, want at most 5s (--workload-cert-ttl)", left)
		}
	}
	metrics := httpGet(t, "http://"+listening["metrics_address"].(string)+"/metrics")
	for _, want := range []string{"dapr_sentry_cert_sign_success_total 1", "dapr_sentry_issuercert_changed_total 1", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("sentry exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sentry did not exit after SIGTERM")
	}
}

func errorsUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

// healthy polls url until it answers 200, for at most wait, and returns
// the body.
func healthy(t *testing.T, url string, wait time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return string(body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s = %d after %s", url, resp.StatusCode, wait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	return string(body)
}
