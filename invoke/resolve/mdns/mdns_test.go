package mdns

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/mdns"

	"github.com/tandemrun/tandem/invoke/resolve"
)

// uniqueApp keeps concurrent test runs on one network apart.
func uniqueApp(name string) string {
	return name + "-" + strings.ToLower(rand.Text()[:8])
}

var fast = map[string]any{"browseTimeout": "300ms"}

// start announces appID on 127.0.0.1:port; appID "" gives a browse-only
// resolver. Skips when the sandbox has no multicast.
func start(t *testing.T, appID string, port int) *Resolver {
	t.Helper()
	r, err := New(resolve.Config{
		Self:          resolve.Instance{AppID: appID, Address: "127.0.0.1", InternalPort: port},
		Configuration: fast,
	})
	if err != nil {
		if strings.Contains(err.Error(), "multicast") {
			t.Skipf("no multicast here: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestFindEachOther(t *testing.T) {
	orders, checkout := uniqueApp("orders"), uniqueApp("checkout")
	ro := start(t, orders, 50001)
	rc := start(t, checkout, 50002)
	ctx := context.Background()

	got, err := rc.Resolve(ctx, resolve.Request{AppID: orders})
	if err != nil || got != "127.0.0.1:50001" {
		t.Fatalf("checkout -> orders = %q, %v", got, err)
	}
	got, err = ro.Resolve(ctx, resolve.Request{AppID: checkout})
	if err != nil || got != "127.0.0.1:50002" {
		t.Fatalf("orders -> checkout = %q, %v", got, err)
	}
}

func TestRoundRobinAcrossInstances(t *testing.T) {
	orders := uniqueApp("orders")
	start(t, orders, 50011)
	start(t, orders, 50012)
	client := start(t, "", 0)
	ctx := context.Background()
	req := resolve.Request{AppID: orders}

	// The first answer returns at once; the second lands during the same
	// browse.
	deadline := time.Now().Add(3 * time.Second)
	for {
		list, err := client.List(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(list) == "[127.0.0.1:50011 127.0.0.1:50012]" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("List = %v, want both instances", list)
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]int{}
	for range 4 {
		a, err := client.Resolve(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		seen[a]++
	}
	if seen["127.0.0.1:50011"] != 2 || seen["127.0.0.1:50012"] != 2 {
		t.Fatalf("spread = %v", seen)
	}
}

func TestUnknownAppAndClose(t *testing.T) {
	orders := uniqueApp("orders")
	ro := start(t, orders, 50021)
	ctx := context.Background()

	client := start(t, "", 0)
	_, err := client.Resolve(ctx, resolve.Request{AppID: uniqueApp("nobody")})
	if !errors.Is(err, resolve.ErrNotFound) || !strings.Contains(err.Error(), "multicast") {
		t.Fatalf("unknown app: %v", err)
	}

	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	fresh := start(t, "", 0)
	if a, err := fresh.Resolve(ctx, resolve.Request{AppID: orders}); !errors.Is(err, resolve.ErrNotFound) {
		t.Fatalf("after Close: %q, %v", a, err)
	}
}

func TestAccept(t *testing.T) {
	r := &Resolver{apps: map[string]*app{}, ttl: time.Minute, log: discard()}
	v6 := &net.IPAddr{IP: net.ParseIP("fd00::1")}
	tests := []struct {
		name string
		e    *mdns.ServiceEntry
		want bool
	}{
		{"match", &mdns.ServiceEntry{AddrV4: net.IPv4(10, 0, 0, 1), Port: 1, InfoFields: []string{"orders"}}, true},
		{"other app's answer", &mdns.ServiceEntry{AddrV4: net.IPv4(10, 0, 0, 2), Port: 1, InfoFields: []string{"cart"}}, false},
		{"no TXT", &mdns.ServiceEntry{AddrV4: net.IPv4(10, 0, 0, 3), Port: 1}, false},
		{"no port", &mdns.ServiceEntry{AddrV4: net.IPv4(10, 0, 0, 4), InfoFields: []string{"orders"}}, false},
		{"no address", &mdns.ServiceEntry{Port: 1, InfoFields: []string{"orders"}}, false},
		{"ipv6", &mdns.ServiceEntry{AddrV6IPAddr: v6, Port: 2, InfoFields: []string{"orders"}}, true},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.accept("orders", tt.e); got != tt.want {
				t.Fatalf("accept = %v, want %v", got, tt.want)
			}
		})
	}
	// IPv4 is preferred while there is any.
	if got := fmt.Sprint(r.apps["orders"].live(time.Now())); got != "[10.0.0.1:1]" {
		t.Fatalf("live = %s", got)
	}
}

func TestAddressesExpire(t *testing.T) {
	now := time.Now()
	a := &app{
		expires: map[string]time.Time{"a:1": now.Add(time.Second), "b:1": now.Add(-time.Second), "[fd00::1]:1": now.Add(time.Second)},
		v6:      map[string]bool{"[fd00::1]:1": true},
	}
	if got := fmt.Sprint(a.live(now)); got != "[a:1]" {
		t.Fatalf("live = %s", got)
	}
	if _, ok := a.expires["b:1"]; ok {
		t.Fatal("expired address kept")
	}
	if got := fmt.Sprint(a.live(now.Add(2 * time.Second))); got != "[]" {
		t.Fatalf("later live = %s", got)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		self resolve.Instance
		cfg  map[string]any
		want string
	}{
		{"no address", resolve.Instance{AppID: "a", InternalPort: 1}, nil, "address"},
		{"no port", resolve.Instance{AppID: "a", Address: "127.0.0.1"}, nil, "port"},
		{"bad duration", resolve.Instance{}, map[string]any{"browseTimeout": "x"}, "browseTimeout"},
		{"zero ttl", resolve.Instance{}, map[string]any{"addressTTL": "0s"}, "positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(resolve.Config{Self: tt.self, Configuration: tt.cfg})
			if err == nil {
				r.Close()
				t.Fatal("want error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}
