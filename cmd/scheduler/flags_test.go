package main

import (
	"io"
	"math"
	"slices"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseFlagsDefaults(t *testing.T) {
	o, err := ParseFlags(nil, io.Discard, env(map[string]string{"NAMESPACE": "dapr-system"}))
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != "dapr-scheduler-server-0" || o.Port != 50006 || o.HealthzPort != 8080 || !o.EtcdEmbed || o.TLSEnabled ||
		o.EtcdClientPort != 2379 || o.EtcdDataDir != "./data" || o.SentryAddress != "dapr-sentry.dapr-system.svc:443" ||
		!slices.Equal(o.EtcdInitialCluster, []string{"dapr-scheduler-server-0=http://localhost:2380"}) ||
		o.EtcdBackendBatchInterval != 100*time.Millisecond || o.EtcdSpaceQuota != int64(9.2e18) || o.Workers != 2048 {
		t.Errorf("defaults: %+v", o)
	}
}

// TestParseFlagsAsDaprsSuiteGivesThem uses the flags Dapr's integration
// framework starts its scheduler with.
func TestParseFlagsAsDaprsSuiteGivesThem(t *testing.T) {
	o, err := ParseFlags([]string{"--log-level=debug", "--id=abc-0", "--port=1", "--healthz-port=2", "--metrics-port=3",
		"--etcd-data-dir=/tmp/d", "--etcd-client-port=4", "--listen-address=127.0.0.1", "--identity-directory-write=/tmp/tls",
		"--etcd-backend-batch-interval=50ms", "--etcd-initial-cluster=abc-0=http://127.0.0.1:5", "--workers=128",
		"--tls-enabled=true", "--sentry-address=127.0.0.1:6", "--trust-anchors-file=/tmp/ca", "--trust-domain=public",
		"--override-broadcast-host-port=1.2.3.4:7"}, io.Discard, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != "abc-0" || o.Port != 1 || o.EtcdClientPort != 4 || !o.TLSEnabled || o.Workers != 128 ||
		o.EtcdBackendBatchInterval != 50*time.Millisecond || broadcastAddress(o) != "1.2.3.4:7" {
		t.Errorf("parsed: %+v", o)
	}
}

func TestParseFlagsInvalid(t *testing.T) {
	for _, args := range [][]string{
		{"--mode=cloud"},
		{"--kubeconfig=/x"},
		{"--etcd-client-endpoints=a:1"},
		{"--etcd-client-username=u"},
		{"--etcd-embed=false"},
		{"--etcd-space-quota=lots"},
		{"--etcd-backend-batch-interval=soon"},
		{"--log-level=chatty"},
		{"--override-broadcast-host-port=nohost"},
		{"extra"},
	} {
		if _, err := ParseFlags(args, io.Discard, env(nil)); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
	if _, err := ParseFlags([]string{"--etcd-embed=false", "--etcd-client-endpoints=127.0.0.1:2379", "--etcd-client-username=u"}, io.Discard, env(nil)); err != nil {
		t.Errorf("external etcd: %v", err)
	}
}

func TestParseQuantity(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "2Gi": 2 << 30, "500M": 500e6, "9.2E": int64(9.2e18), "100E": math.MaxInt64} {
		if got, err := ParseQuantity(in); err != nil || got != want {
			t.Errorf("%s = %d %v, want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1Q", "NaN"} {
		if _, err := ParseQuantity(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"1024", "2Gi", "9.2E", "1e3k", "0.5Mi"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseQuantity(s); err == nil && v < 0 {
			t.Fatalf("%q = %d", s, v)
		}
	})
}
