// Package mdns resolves app IDs on the local network with multicast DNS,
// the way Dapr's mdns name resolver does, so daprd and tandemd sidecars on
// one LAN find each other.
//
// Each sidecar announces a service whose type is its app ID in the
// "local." domain (instance "<host>:<pid>:<port>.<app-id>.local.", SRV to
// its internal gRPC port, A/AAAA with its address, TXT = [app-id]), exactly
// the records Dapr publishes through zeroconf. Resolve browses for the app
// ID, accepts answers whose TXT is the app ID, caches the addresses (each
// expires 60s after it was last seen, refreshed in the background after
// 30s, as in Dapr) and goes round robin over them, IPv4 first.
//
// Configuration (none is required; Dapr's resolver has no options):
//
//	browseTimeout    how long one browse listens for answers (1s)
//	refreshInterval  age at which a cached app is browsed again (30s)
//	addressTTL       how long an address is kept without being seen (60s)
package mdns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/mdns"

	"github.com/tandemrun/tandem/invoke/resolve"
	"github.com/tandemrun/tandem/invoke/resolve/internal/conf"
)

// Defaults, as in Dapr's mdns resolver.
const (
	DefaultBrowseTimeout   = time.Second
	DefaultRefreshInterval = 30 * time.Second
	DefaultAddressTTL      = 60 * time.Second
)

// domain is where Dapr publishes app IDs.
const domain = "local."

// Resolver announces this sidecar and browses for others.
type Resolver struct {
	log           *slog.Logger
	stdlog        *stdLogger
	browseTimeout time.Duration
	refresh       time.Duration
	ttl           time.Duration

	server *mdns.Server // nil when not registering

	ctx    context.Context // cancelled by Close; ends browses early
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	apps map[string]*app
}

// app is what is known about one app ID.
type app struct {
	expires    map[string]time.Time // address -> when it is dropped
	v6         map[string]bool      // addresses that are IPv6
	lastBrowse time.Time
	inflight   *browse
	counter    uint64
}

// browse is one running mDNS query.
type browse struct {
	first chan struct{} // closed at the first accepted answer
	done  chan struct{} // closed when the query ends
}

var (
	_ resolve.Resolver = (*Resolver)(nil)
	_ resolve.Lister   = (*Resolver)(nil)
)

// New reads the configuration and, when cfg.Self.AppID is set, starts
// answering mDNS queries for it.
func New(cfg resolve.Config) (*Resolver, error) {
	m := conf.Map(cfg.Configuration)
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "nameresolution.mdns")
	r := &Resolver{log: log, stdlog: newStdLogger(log), apps: map[string]*app{}}
	var err error
	if r.browseTimeout, err = m.Duration(DefaultBrowseTimeout, "browseTimeout"); err != nil {
		return nil, fmt.Errorf("mdns name resolution: %w", err)
	}
	if r.refresh, err = m.Duration(DefaultRefreshInterval, "refreshInterval"); err != nil {
		return nil, fmt.Errorf("mdns name resolution: %w", err)
	}
	if r.ttl, err = m.Duration(DefaultAddressTTL, "addressTTL"); err != nil {
		return nil, fmt.Errorf("mdns name resolution: %w", err)
	}
	if r.browseTimeout <= 0 || r.refresh <= 0 || r.ttl <= 0 {
		return nil, errors.New("mdns name resolution: browseTimeout, refreshInterval and addressTTL must be positive")
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())

	if cfg.Self.AppID != "" {
		if err := r.register(cfg.Self); err != nil {
			r.cancel()
			return nil, fmt.Errorf("mdns name resolution: announce %s: %w", cfg.Self.AppID, err)
		}
	}
	return r, nil
}

// register starts an mDNS responder for self with Dapr's records.
func (r *Resolver) register(self resolve.Instance) error {
	if self.Address == "" {
		return errors.New("this sidecar's address is empty: set DAPR_HOST_IP or the host address flag")
	}
	if self.InternalPort <= 0 {
		return errors.New("this sidecar's internal gRPC port is not set")
	}
	ips, err := hostIPs(self.Address)
	if err != nil {
		return err
	}
	host, _ := os.Hostname()
	host = dnsLabel(host)
	instance := fmt.Sprintf("%s:%d:%d", host, os.Getpid(), self.InternalPort)
	svc, err := mdns.NewMDNSService(instance, self.AppID, domain, host+"."+domain, self.InternalPort, ips, []string{self.AppID})
	if err != nil {
		return err
	}
	r.server, err = mdns.NewServer(&mdns.Config{Zone: svc, Logger: r.stdlog.logger})
	if err != nil {
		return fmt.Errorf("%w; check that UDP multicast on port 5353 is allowed", err)
	}
	r.log.Info("announced on mDNS", "app_id", self.AppID, "address", net.JoinHostPort(self.Address, strconv.Itoa(self.InternalPort)))
	return nil
}

// Resolve returns the next known address of req.AppID, round robin, IPv4
// before IPv6.
func (r *Resolver) Resolve(ctx context.Context, req resolve.Request) (string, error) {
	addrs, err := r.List(ctx, req)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.apps[req.AppID]
	if a == nil { // forgotten concurrently
		return addrs[0], nil
	}
	n := a.counter
	a.counter++
	return addrs[n%uint64(len(addrs))], nil
}

// List returns the known addresses of req.AppID, IPv4 ones only when there
// are any. With nothing cached it browses and waits for the first answer
// (at most browseTimeout); a cached app older than refreshInterval is
// browsed again in the background.
func (r *Resolver) List(ctx context.Context, req resolve.Request) ([]string, error) {
	r.mu.Lock()
	a := r.appLocked(req.AppID)
	addrs := a.live(time.Now())
	var b *browse
	switch {
	case len(addrs) == 0:
		b = r.startBrowseLocked(req.AppID, a)
	case time.Since(a.lastBrowse) >= r.refresh:
		r.startBrowseLocked(req.AppID, a)
	}
	r.mu.Unlock()

	if b != nil {
		select {
		case <-b.first:
		case <-b.done:
		case <-ctx.Done():
			return nil, fmt.Errorf("resolve %q over mDNS: %w", req.AppID, ctx.Err())
		}
		r.mu.Lock()
		if a := r.apps[req.AppID]; a != nil {
			addrs = a.live(time.Now())
		}
		r.mu.Unlock()
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("app %q: no mDNS answer on the local network within %v; check that its sidecar is running with mdns name resolution and that multicast on UDP 5353 reaches this host: %w",
			req.AppID, r.browseTimeout, resolve.ErrNotFound)
	}
	return addrs, nil
}

// Close stops answering queries and waits for running browses.
func (r *Resolver) Close() error {
	r.cancel()
	var err error
	if r.server != nil {
		err = r.server.Shutdown()
	}
	r.wg.Wait()
	return err
}

func (r *Resolver) appLocked(id string) *app {
	a := r.apps[id]
	if a == nil {
		a = &app{expires: map[string]time.Time{}, v6: map[string]bool{}}
		r.apps[id] = a
	}
	return a
}

// live drops expired addresses and returns the rest, sorted, IPv4 only
// when there is any IPv4.
func (a *app) live(now time.Time) []string {
	var v4, v6 []string
	for addr, exp := range a.expires {
		if !now.Before(exp) {
			delete(a.expires, addr)
			delete(a.v6, addr)
			continue
		}
		if a.v6[addr] {
			v6 = append(v6, addr)
		} else {
			v4 = append(v4, addr)
		}
	}
	out := v4
	if len(out) == 0 {
		out = v6
	}
	slices.Sort(out)
	return out
}

// startBrowseLocked starts a browse for id unless one is running.
func (r *Resolver) startBrowseLocked(id string, a *app) *browse {
	if a.inflight != nil {
		return a.inflight
	}
	if r.ctx.Err() != nil {
		b := &browse{first: make(chan struct{}), done: make(chan struct{})}
		close(b.done)
		return b
	}
	b := &browse{first: make(chan struct{}), done: make(chan struct{})}
	a.inflight = b
	a.lastBrowse = time.Now()
	r.wg.Add(1)
	go r.runBrowse(id, b)
	return b
}

// runBrowse queries the network for id until browseTimeout, recording
// every matching answer. It sends a short query at a time and reads the
// answers once that query has returned, because hashicorp/mdns keeps
// writing to entries it has already handed out while a query runs; short
// steps keep the first answer quick and resend the question in case a
// packet was lost.
func (r *Resolver) runBrowse(id string, b *browse) {
	defer r.wg.Done()
	step := min(max(r.browseTimeout/4, 50*time.Millisecond), 250*time.Millisecond)
	deadline := time.Now().Add(r.browseTimeout)
	found := false
	for r.ctx.Err() == nil {
		d := min(step, time.Until(deadline))
		if d <= 0 {
			break
		}
		entries := make(chan *mdns.ServiceEntry, 64)
		err := mdns.QueryContext(r.ctx, &mdns.QueryParam{
			Service: id,
			Domain:  domain,
			Timeout: d,
			Entries: entries,
			Logger:  r.stdlog.logger,
		})
		close(entries) // the query has returned: nothing sends any more
		for e := range entries {
			if r.accept(id, e) && !found {
				found = true
				close(b.first)
			}
		}
		if err != nil {
			if r.ctx.Err() == nil {
				r.log.Warn("mDNS browse failed", "app_id", id, "error", err)
			}
			break
		}
	}
	r.mu.Lock()
	if a := r.apps[id]; a != nil && a.inflight == b {
		a.inflight = nil
		if len(a.expires) == 0 {
			delete(r.apps, id) // do not keep every unknown app ID
		}
	}
	r.mu.Unlock()
	close(b.done)
}

// accept records e if it is an answer for app id; Dapr's rule: its TXT is
// the app ID. Other answers (another app's, which arrive because answers
// are multicast) are ignored.
func (r *Resolver) accept(id string, e *mdns.ServiceEntry) bool {
	if e == nil || len(e.InfoFields) == 0 || e.Port <= 0 {
		return false
	}
	for _, f := range e.InfoFields {
		if f != id {
			return false
		}
	}
	var addr string
	v6 := false
	switch {
	case e.AddrV4 != nil:
		addr = net.JoinHostPort(e.AddrV4.String(), strconv.Itoa(e.Port))
	case e.AddrV6IPAddr != nil:
		addr = net.JoinHostPort(e.AddrV6IPAddr.String(), strconv.Itoa(e.Port))
		v6 = true
	default:
		return false
	}
	r.mu.Lock()
	a := r.appLocked(id)
	a.expires[addr] = time.Now().Add(r.ttl)
	a.v6[addr] = v6
	r.mu.Unlock()
	r.log.Debug("mDNS answer", "app_id", id, "address", addr)
	return true
}

// hostIPs turns the configured address (an IP or a host name) into IPs.
func hostIPs(address string) ([]net.IP, error) {
	if ip := net.ParseIP(address); ip != nil {
		return []net.IP{ip}, nil
	}
	ips, err := net.LookupIP(address)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("host address %q is neither an IP nor a resolvable name: %v", address, err)
	}
	return ips, nil
}

// dnsLabel makes a host name usable as one DNS label.
func dnsLabel(s string) string {
	s = strings.ReplaceAll(s, ".", "-")
	if s == "" {
		return "localhost"
	}
	return s
}
