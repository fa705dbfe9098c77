package proxy

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
)

// TestPublicServer: --dapr-public-port serves daprd's public endpoints
// (health and metadata, without the API token) and nothing else; the
// metadata reports the actor runtime daprd reports without placement, the
// Resiliency resources and a daprd-shaped runtime version.
func TestPublicServer(t *testing.T) {
	lns, err := Listen(ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1,
		PublicAddress: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if lns.Public != nil {
		t.Fatal("public listener without a port")
	}
	lns.Close()
	s, lns := loneWith(t, ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1,
		PublicAddress: "127.0.0.1", PublicPort: freePort(t)}, Self{AppID: "pub", RuntimeVersion: "1.2.3"},
		APIs{Token: "secret", Resiliencies: func() []string { return []string{"res1", "res2"} }})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	base := "http://" + lns.Public.Addr().String()
	get := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	code, body := get("/v1.0/metadata")
	if code != http.StatusOK {
		t.Fatalf("public metadata: %d %s", code, body)
	}
	var md struct {
		ID             string `json:"id"`
		RuntimeVersion string `json:"runtimeVersion"`
		ActorRuntime   struct {
			RuntimeStatus string `json:"runtimeStatus"`
			HostReady     bool   `json:"hostReady"`
			Placement     string `json:"placement"`
		} `json:"actorRuntime"`
		Resiliencies []struct {
			Name string `json:"name"`
		} `json:"resiliencies"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		t.Fatal(err)
	}
	if md.ID != "pub" || md.RuntimeVersion != "1.2.3" || md.ActorRuntime.RuntimeStatus != "DISABLED" ||
		md.ActorRuntime.HostReady || md.ActorRuntime.Placement != "placement: disconnected" {
		t.Errorf("metadata = %+v", md)
	}
	if len(md.Resiliencies) != 2 || md.Resiliencies[0].Name != "res1" || md.Resiliencies[1].Name != "res2" {
		t.Errorf("resiliencies = %+v", md.Resiliencies)
	}
	if code, body := get("/v1.0/state/s/k"); code != http.StatusNotFound {
		t.Errorf("state on the public port: %d %s, want 404", code, body)
	}
	if code, _ := get("/v1.0/healthz/outbound"); code != http.StatusNoContent {
		t.Errorf("healthz/outbound on the public port: %d", code)
	}
	// The main API still wants the token.
	resp, err := http.Get("http://" + s.HTTPAddr() + "/v1.0/metadata")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API metadata without the token: %d", resp.StatusCode)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := Listen(ListenConfig{Addresses: []string{"127.0.0.1"}, InternalAddress: "127.0.0.1", MetricsPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.HTTPPort()
}
