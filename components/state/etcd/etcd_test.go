package etcd

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/statetest"
)

// startEtcd runs a one-member etcd for the package's tests (the real
// server, embedded as the scheduler embeds it) and returns its client
// address.
func startEtcd(t *testing.T) string {
	t.Helper()
	free := func() url.URL {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return url.URL{Scheme: "http", Host: l.Addr().String()}
	}
	cfg := embed.NewConfig()
	cfg.Dir = t.TempDir()
	cfg.Name = "statetest"
	client, peer := free(), free()
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, peer.String())
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not start")
	}
	return client.Host
}

func open(t *testing.T, s *Store, props map[string]string) *Store {
	t.Helper()
	if err := s.Init(context.Background(), components.Metadata{Name: "etcd", Type: Type, Properties: props}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	addr := startEtcd(t)
	for _, v := range []struct {
		name string
		new  func() *Store
	}{{"v1", func() *Store { return New(nil) }}, {"v2", func() *Store { return NewV2(nil) }}} {
		t.Run(v.name, func(t *testing.T) {
			statetest.Run(t, func(t *testing.T) state.Store {
				return open(t, v.new(), map[string]string{"endpoints": addr, "keyPrefixPath": "tandem-" + v.name})
			})
		})
	}
}

// As in Dapr, a cluster that is down fails the calls, not Init (Dapr's
// resources/versionv2 starts a sidecar with etcd components and no etcd).
func TestInitDoesNotWait(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := open(t, NewV2(nil), map[string]string{"endpoints": addr})
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := s.Get(ctx, &state.GetRequest{Key: "k"}); err == nil {
		t.Error("Get against no etcd succeeded")
	}
	if err := New(nil).Init(context.Background(), components.Metadata{Name: "etcd"}); err == nil {
		t.Error("Init without endpoints succeeded")
	}
	if err := New(nil).Init(context.Background(), components.Metadata{Name: "etcd", Properties: map[string]string{"endpoints": addr, "tlsEnable": "true"}}); err == nil {
		t.Error("Init with tlsEnable and no certificates succeeded")
	}
}

// The layouts: v1 keeps the value as is; v2 is Dapr's envelope, whose TTL
// comes back as ttlExpireTime, and layouts decode what they encode.
func TestLayouts(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	if got := (layoutV1{}).encode([]byte(`{"a":1}`), 10, now); string(got) != `{"a":1}` {
		t.Errorf("v1 stored %q", got)
	}
	for _, ttl := range []int{0, 60} {
		b := (layoutV2{}).encode([]byte("value"), ttl, now)
		data, md, err := (layoutV2{}).decode(b)
		if err != nil || string(data) != "value" {
			t.Fatalf("v2 round trip: %q, %v", data, err)
		}
		want := ""
		if ttl > 0 {
			want = now.Add(time.Minute).Format(time.RFC3339)
		}
		if md[state.MetadataTTLExpireTime] != want {
			t.Errorf("ttl %d: ttlExpireTime %q, want %q", ttl, md[state.MetadataTTLExpireTime], want)
		}
	}
	if _, _, err := (layoutV2{}).decode([]byte{0x0a, 0x05, 'x'}); err == nil {
		t.Error("truncated v2 value decoded")
	}
}

func TestVersions(t *testing.T) {
	v := Versions(nil)
	for _, ver := range []string{"", "v1", "v2"} {
		s, err := v.Build(Type, ver)
		if err != nil {
			t.Fatalf("version %q: %v", ver, err)
		}
		_, isV2 := s.(*Store).layout.(layoutV2)
		if isV2 != (ver == "v2") {
			t.Errorf("version %q: layout %T", ver, s.(*Store).layout)
		}
	}
	if _, err := v.Build(Type, "v3"); err == nil {
		t.Error("v3 built")
	}
}
