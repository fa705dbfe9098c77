package main

import (
	"io"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		check   func(t *testing.T, o *Options)
		wantErr bool
	}{
		{"dapr defaults", nil, func(t *testing.T, o *Options) {
			if o.Port != 6500 || o.HealthzPort != 8080 || o.Config != "daprsystem" || o.TrustAnchorsFile != defaultTrustAnchorsFile || o.DisableLeaderElection {
				t.Errorf("got %+v", o)
			}
		}, false},
		{"dapr chart flags", []string{"--watch-interval", "0", "--max-pod-restarts-per-minute", "20", "--log-level", "debug",
			"--enable-metrics", "--metrics-port", "9091", "--disable-leader-election", "--trust-anchors-file", "/a/ca.crt"}, func(t *testing.T, o *Options) {
			if !o.DisableLeaderElection || o.MetricsPort != "9091" || o.TrustAnchorsFile != "/a/ca.crt" || o.Ignored["watch-interval"] != "0" {
				t.Errorf("got %+v", o)
			}
		}, false},
		{"tandem flags", []string{"--sentry-address", "s:443", "--kubeconfig", "/k"}, func(t *testing.T, o *Options) {
			if o.SentryAddress != "s:443" || o.Kubeconfig != "/k" {
				t.Errorf("got %+v", o)
			}
		}, false},
		{"bad log level", []string{"--log-level", "loud"}, nil, true},
		{"bad port", []string{"--port", "70000"}, nil, true},
		{"positional", []string{"x"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseFlags(tc.args, io.Discard)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if tc.check != nil {
				tc.check(t, o)
			}
		})
	}
}
