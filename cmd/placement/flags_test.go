package main

import (
	"io"
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
	if o.ID != "dapr-placement-0" || o.Port != 50005 || o.HealthzPort != 8080 || !o.InmemStoreEnabled || o.TLSEnabled ||
		o.ReplicationFactor != 100 || o.DisseminateTimeout != 8*time.Second || o.KeepAliveTime != 2*time.Second ||
		o.SentryAddress != "dapr-sentry.dapr-system.svc:443" || o.TrustAnchorsFile != defaultTrustAnchorsFile ||
		!slices.Equal(o.InitialCluster, []string{"dapr-placement-0=127.0.0.1:8201"}) || o.MetadataEnabled {
		t.Errorf("defaults: %+v", o)
	}
}

func TestParseFlagsDaprStyle(t *testing.T) {
	o, err := ParseFlags([]string{"-id", "p1", "--initial-cluster=p0=a:1,p1=b:2", "--initial-cluster", "p2=c:3",
		"--raft-logstore-path", "/tmp/x", "--tls-enabled", "--max-api-level=20", "--disseminate-timeout=2s"}, io.Discard,
		env(map[string]string{"DAPR_PLACEMENT_METADATA_ENABLED": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	if o.ID != "p1" || !slices.Equal(o.InitialCluster, []string{"p0=a:1", "p1=b:2", "p2=c:3"}) || o.InmemStoreEnabled ||
		!o.TLSEnabled || !o.set["max-api-level"] || o.DisseminateTimeout != 2*time.Second || !o.MetadataEnabled {
		t.Errorf("parsed: %+v", o)
	}
}

func TestParseFlagsInvalid(t *testing.T) {
	for _, args := range [][]string{
		{"--keepalive-time=20s"},
		{"--keepalive-timeout=100ms"},
		{"--mode=cloud"},
		{"--initial-cluster=nonsense"},
		{"--replicationFactor=0"},
		{"extra"},
	} {
		if _, err := ParseFlags(args, io.Discard, env(nil)); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
}
