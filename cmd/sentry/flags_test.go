package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
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
		{"ignored Dapr flags", []string{"--kubeconfig", "/k", "--jwt-enabled", "--oidc-server-listen-port", "9", "--token-audience=x"}, func(t *testing.T, o *Options) {
			want := map[string]string{"kubeconfig": "/k", "jwt-enabled": "true", "oidc-server-listen-port": "9", "token-audience": "x"}
			for k, v := range want {
				if o.IgnoredDaprFlags[k] != v {
					t.Errorf("ignored %s = %q, want %q", k, o.IgnoredDaprFlags[k], v)
				}
			}
		}, false},
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
		{"unknown flag", []string{"--no-such-flag"}, nil, true},
		{"kubernetes mode", []string{"--mode", "kubernetes"}, nil, true},
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
