package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tandemrun/tandem/sentry/ca"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, o *Options)
		wantErr bool
	}{
		{"defaults", nil, func(t *testing.T, o *Options) {
			if o.Port != 50001 || o.HealthzPort != 8080 || o.MetricsPort != "9090" || o.TrustDomain != "localhost" ||
				o.CredentialsDir != defaultCredentialsDir || o.RootCertFile != "ca.crt" || !o.EnableMetrics || o.ListenAddress != "" {
				t.Errorf("defaults = %+v", o)
			}
		}, false},
		{"single and double dash", []string{"-port", "1234", "--trust-domain", "example.org", "-log-as-json", "--enable-metrics=false"}, func(t *testing.T, o *Options) {
			if o.Port != 1234 || o.TrustDomain != "example.org" || !o.LogAsJSON || o.EnableMetrics {
				t.Errorf("got %+v", o)
			}
		}, false},
		{"ignored Dapr flags", []string{"--enable-profiling", "--profile-port", "9", "--token-audience=x"}, func(t *testing.T, o *Options) {
			want := map[string]string{"enable-profiling": "true", "profile-port": "9", "token-audience": "x"}
			for k, v := range want {
				if o.IgnoredDaprFlags[k] != v {
					t.Errorf("ignored %s = %q, want %q", k, o.IgnoredDaprFlags[k], v)
				}
			}
		}, false},
		{"jwt and oidc defaults", nil, func(t *testing.T, o *Options) {
			j, d := o.JWT, o.OIDC
			if j.Enabled || j.KeyFile != "jwt.key" || j.JWKSFile != "jwks.json" || j.Issuer != "" || j.Algorithm != "RS256" || j.KeyID != "" || j.TTL != 24*time.Hour ||
				d.Enabled || d.Port != 9080 || d.Address != "localhost" || !d.TLSEnabled || d.TLSCertFile != "" || d.JWKSURI != "" || d.PathPrefix != "" || d.AllowedHosts != nil {
				t.Errorf("defaults = %+v %+v", j, d)
			}
		}, false},
		{"jwt and oidc flags", []string{"-jwt-enabled=true", "-jwt-ttl=2h0m0s", "-jwt-issuer=https://localhost:1/auth", "-jwt-key-id=k",
			"-jwt-signing-algorithm", "ES256", "-jwt-key-filename", "/abs/k.pem", "-jwks-filename", "j.json",
			"-oidc-enabled=true", "-oidc-server-listen-port=1", "-oidc-server-listen-address", "0.0.0.0", "-oidc-jwks-uri=https://x/jwks",
			"-oidc-path-prefix=/auth", "-oidc-allowed-hosts=localhost,example.com", "--oidc-allowed-hosts", "api.example.com",
			"-oidc-server-tls-cert-file=/c", "-oidc-server-tls-key-file=/k"}, func(t *testing.T, o *Options) {
			j, d := o.JWT, o.OIDC
			if !j.Enabled || j.TTL != 2*time.Hour || j.Issuer != "https://localhost:1/auth" || !j.IssuerSet || j.KeyID != "k" || j.Algorithm != "ES256" ||
				j.KeyFile != "/abs/k.pem" || j.JWKSFile != "j.json" || !d.Enabled || d.Port != 1 || d.Address != "0.0.0.0" || d.JWKSURI != "https://x/jwks" ||
				d.PathPrefix != "/auth" || len(d.AllowedHosts) != 3 || d.AllowedHosts[2] != "api.example.com" || d.TLSCertFile != "/c" || d.TLSKeyFile != "/k" {
				t.Errorf("got %+v %+v", j, d)
			}
			if len(o.IgnoredDaprFlags) != 0 {
				t.Errorf("jwt/oidc flags reported as ignored: %v", o.IgnoredDaprFlags)
			}
		}, false},
		{"oidc plain http", []string{"-jwt-enabled", "-oidc-enabled", "-oidc-server-tls-enabled=false"}, nil, false},
		{"oidc tls needs files", []string{"-jwt-enabled", "-oidc-enabled"}, nil, true},
		{"oidc cert without key", []string{"-oidc-server-tls-cert-file=/c"}, nil, true},
		{"jwt issuer without jwt", []string{"-jwt-issuer=https://x"}, nil, true},
		{"jwt ttl zero", []string{"-jwt-ttl=0s"}, nil, true},
		{"tandem flags", []string{"--workload-cert-ttl", "5s", "--join-token-file", "/t"}, func(t *testing.T, o *Options) {
			if o.WorkloadCertTTL != 5*time.Second || o.JoinTokenFile != "/t" {
				t.Errorf("got %+v", o)
			}
		}, false},
		{"explicit config", []string{"--config", "c.yaml"}, func(t *testing.T, o *Options) {
			if !o.ConfigExplicit || o.ConfigPath != "c.yaml" {
				t.Errorf("got %+v", o)
			}
		}, false},
		{"rotation flags", []string{"--generate-root-into", "/new", "--issuer-credentials-reload-interval", "250ms"}, func(t *testing.T, o *Options) {
			if o.GenerateRootInto != "/new" || o.ReloadInterval != 250*time.Millisecond {
				t.Errorf("got %+v", o)
			}
		}, false},
		{"reload on by default", nil, func(t *testing.T, o *Options) {
			if o.ReloadInterval != time.Second {
				t.Errorf("reload interval = %v, want 1s", o.ReloadInterval)
			}
		}, false},
		{"negative reload interval", []string{"--issuer-credentials-reload-interval", "-1s"}, nil, true},
		{"unknown flag", []string{"--no-such-flag"}, nil, true},
		{"kubernetes mode", []string{"--mode", "kubernetes", "--kubeconfig", "/k"}, func(t *testing.T, o *Options) {
			if o.Mode != "kubernetes" || o.Kubeconfig != "/k" {
				t.Errorf("got %+v", o)
			}
		}, false},
		{"unknown mode", []string{"--mode", "swarm"}, nil, true},
		{"bad log level", []string{"--log-level", "loud"}, nil, true},
		{"bad port", []string{"--port", "70000"}, nil, true},
		{"positional argument", []string{"extra"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, o)
			}
		})
	}
}

func TestLoadMTLS(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const head = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: daprsystem\nspec:\n  mtls:\n"
	good := write("good.yaml", head+"    workloadCertTTL: 1h\n    allowedClockSkew: 0s\n")
	bad := write("bad.yaml", head+"    workloadCertTTL: one day\n")
	tests := []struct {
		name     string
		opts     Options
		wantTTL  time.Duration
		wantSkew time.Duration
		wantErr  bool
	}{
		{"default name, no file", Options{ConfigPath: defaultConfigName}, 24 * time.Hour, 15 * time.Minute, false},
		{"file", Options{ConfigPath: good, ConfigExplicit: true}, time.Hour, -1, false},
		{"flag overrides file", Options{ConfigPath: good, ConfigExplicit: true, WorkloadCertTTL: 5 * time.Second}, 5 * time.Second, -1, false},
		{"explicit missing file", Options{ConfigPath: filepath.Join(dir, "none.yaml"), ConfigExplicit: true}, 0, 0, true},
		{"bad duration", Options{ConfigPath: bad, ConfigExplicit: true}, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadMTLS(&tt.opts)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (got.WorkloadCertTTL != tt.wantTTL || got.AllowedClockSkew != tt.wantSkew) {
				t.Fatalf("got ttl %v skew %v, want %v %v", got.WorkloadCertTTL, got.AllowedClockSkew, tt.wantTTL, tt.wantSkew)
			}
		})
	}
}

func TestGenerateRootInto(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "next")
	getenv := func(string) string { return "" }
	if code := run(context.Background(), []string{"--generate-root-into", dir, "--trust-domain", "example.org"}, io.Discard, io.Discard, getenv); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	b, err := ca.LoadBundle(ca.DefaultPaths(dir))
	if err != nil {
		t.Fatalf("generated credentials: %v", err)
	}
	if len(b.TrustAnchors) != 1 || b.TrustAnchors[0].Subject.Organization[0] != "example.org" {
		t.Fatalf("root subject %v", b.TrustAnchors[0].Subject)
	}
	// Never overwrite.
	if code := run(context.Background(), []string{"--generate-root-into", dir}, io.Discard, io.Discard, getenv); code == 0 {
		t.Fatal("second run overwrote the folder")
	}
}
