package headers

import (
	"errors"
	"net"
	"os"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
)

// Metadata names of the forwarding entries (lower-case like all metadata;
// the callee's sidecar hands them to its app as X-Forwarded-For,
// X-Forwarded-Host and Forwarded headers).
const (
	forwardedForKey  = "x-forwarded-for"
	forwardedHostKey = "x-forwarded-host"
	forwardedKey     = "forwarded"
)

// Forwarded is what a sidecar adds to the metadata of every invocation it
// sends to another app's sidecar, as daprd does: X-Forwarded-For with its
// host address, X-Forwarded-Host with its host name and Forwarded with
// "for=<addr>;by=<addr>;host=<name>". Each comes after any value the
// calling app already sent, so a chain of hops reads in order.
//
// The values are built once; adding them to a call costs no formatting.
type Forwarded struct {
	// entries are the metadata names with their one value, each a slice of
	// length and capacity 1 shared by every call: read only, and an append
	// to it always copies.
	entries []forwardedEntry
}

type forwardedEntry struct {
	key  string
	vals []string
}

// NewForwarded returns the entries for a sidecar at host address addr on
// the host named name. As in daprd, an empty addr leaves out
// X-Forwarded-For and the for/by pair, an empty name X-Forwarded-Host and
// host; with both empty nothing is added.
func NewForwarded(addr, name string) *Forwarded {
	f := &Forwarded{}
	var fwd string
	if addr != "" {
		f.entries = append(f.entries, forwardedEntry{forwardedForKey, []string{addr}})
		fwd = "for=" + addr + ";by=" + addr + ";"
	}
	if name != "" {
		f.entries = append(f.entries, forwardedEntry{forwardedHostKey, []string{name}})
		fwd += "host=" + name
	}
	if fwd != "" {
		f.entries = append(f.entries, forwardedEntry{forwardedKey, []string{fwd}})
	}
	return f
}

// AddTo appends the forwarding values to md. Existing values are kept in
// front; their slice is not written to (it may be the caller's request
// headers). At most one allocation when none of the names is present yet.
// A nil Forwarded adds nothing.
func (f *Forwarded) AddTo(md Metadata) { f.AddToInto(md, nil) }

// AddToInto is AddTo with room for the new entries in spare, when it holds
// Len of them (it is part of the caller's own allocation).
func (f *Forwarded) AddToInto(md Metadata, spare []internalsv1.ListStringValue) {
	if f == nil {
		return
	}
	var fresh []internalsv1.ListStringValue
	if len(spare) >= len(f.entries) {
		fresh = spare
	}
	for _, e := range f.entries {
		if cur := md[e.key]; len(cur.GetValues()) > 0 {
			vals := make([]string, len(cur.Values)+1)
			copy(vals, cur.Values)
			vals[len(cur.Values)] = e.vals[0]
			cur.Values = vals
			continue
		}
		if fresh == nil {
			fresh = make([]internalsv1.ListStringValue, len(f.entries))
		}
		lv := &fresh[0]
		fresh = fresh[1:]
		lv.Values = e.vals
		md[e.key] = lv
	}
}

// Len is how many entries AddTo adds at most.
func (f *Forwarded) Len() int {
	if f == nil {
		return 0
	}
	return len(f.entries)
}

// HostForwarded returns this host's entries, worked out as daprd does: the
// address is hostIP (DAPR_HOST_IP) when set, else the one this host would
// send from to reach the internet, else its first non-loopback IPv4
// address; the name is the OS host name. It looks at the network: build
// it once, at start-up, and hand it to the APIs.
func HostForwarded(hostIP string) *Forwarded {
	name, _ := os.Hostname()
	addr, _ := hostAddress(hostIP)
	return NewForwarded(addr, name)
}

// hostAddress picks this host's outbound address as daprd does.
func hostAddress(hostIP string) (string, error) {
	if hostIP != "" {
		return hostIP, nil
	}
	// Connecting a UDP socket sends nothing; it only makes the kernel choose
	// the source address of the default route. The target is daprd's.
	if c, err := net.Dial("udp", "8.8.8.8:80"); err == nil {
		defer c.Close()
		if ua, ok := c.LocalAddr().(*net.UDPAddr); ok {
			return ua.IP.String(), nil
		}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if in, ok := a.(*net.IPNet); ok && !in.IP.IsLoopback() && in.IP.To4() != nil {
			return in.IP.String(), nil
		}
	}
	return "", errors.New("no outbound or non-loopback IPv4 address: set DAPR_HOST_IP")
}
