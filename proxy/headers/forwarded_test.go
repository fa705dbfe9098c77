package headers

import (
	"net"
	"os"
	"slices"
	"testing"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
)

func TestForwardedValues(t *testing.T) {
	for _, tt := range []struct {
		name, addr, host string
		want             map[string][]string
	}{
		{"address and name", "10.0.0.7", "node-a", map[string][]string{
			"x-forwarded-for": {"10.0.0.7"}, "x-forwarded-host": {"node-a"},
			"forwarded": {"for=10.0.0.7;by=10.0.0.7;host=node-a"},
		}},
		// daprd's shapes when one half is unknown, trailing ";" included.
		{"address only", "10.0.0.7", "", map[string][]string{
			"x-forwarded-for": {"10.0.0.7"}, "forwarded": {"for=10.0.0.7;by=10.0.0.7;"},
		}},
		{"name only", "", "node-a", map[string][]string{
			"x-forwarded-host": {"node-a"}, "forwarded": {"host=node-a"},
		}},
		{"neither", "", "", map[string][]string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			md := Metadata{"x-other": lv("o")}
			NewForwarded(tt.addr, tt.host).AddTo(md)
			delete(md, "x-other")
			if len(md) != len(tt.want) {
				t.Errorf("metadata = %v, want %v", md, tt.want)
			}
			for k, want := range tt.want {
				if got := md[k].GetValues(); !slices.Equal(got, want) {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestForwardedAppendsAfterCallerValues(t *testing.T) {
	// The caller's values may be its request's header slice, with room to
	// spare: appending must not write into it.
	callers := make([]string, 1, 4)
	callers[0] = "203.0.113.9"
	md := Metadata{
		"x-forwarded-for":  {Values: callers},
		"x-forwarded-host": lv("front.example", "edge.example"),
		"forwarded":        lv(), // present but empty: just ours
	}
	f := NewForwarded("10.0.0.7", "node-a")
	f.AddTo(md)

	want := map[string][]string{
		"x-forwarded-for":  {"203.0.113.9", "10.0.0.7"},
		"x-forwarded-host": {"front.example", "edge.example", "node-a"},
		"forwarded":        {"for=10.0.0.7;by=10.0.0.7;host=node-a"},
	}
	for k, w := range want {
		if got := md[k].GetValues(); !slices.Equal(got, w) {
			t.Errorf("%s = %q, want %q", k, got, w)
		}
	}
	if spare := callers[:2][1]; spare != "" {
		t.Errorf("caller's header slice written to: %q", spare)
	}

	// The shared one-value slices must not be changed by a later append.
	md2 := Metadata{}
	f.AddTo(md2)
	md2["x-forwarded-for"].Values = append(md2["x-forwarded-for"].Values, "x")
	md3 := Metadata{}
	f.AddTo(md3)
	if got := md3["x-forwarded-for"].GetValues(); !slices.Equal(got, []string{"10.0.0.7"}) {
		t.Errorf("shared values changed: %q", got)
	}
}

func TestForwardedAllocations(t *testing.T) {
	f := NewForwarded("10.0.0.7", "node-a")
	md := make(Metadata, 8)
	allocs := testing.AllocsPerRun(100, func() {
		clear(md)
		f.AddTo(md)
	})
	if allocs > 1 {
		t.Errorf("AddTo allocates %v times per call, want at most 1", allocs)
	}
	spare := make([]internalsv1.ListStringValue, f.Len())
	allocs = testing.AllocsPerRun(100, func() {
		clear(md)
		f.AddToInto(md, spare)
	})
	if allocs != 0 || len(md) != f.Len() || md["forwarded"] != &spare[2] {
		t.Errorf("AddToInto with room for %d entries: %v allocations per call, %d entries, want none and %d in spare", f.Len(), allocs, len(md), f.Len())
	}
	if (*Forwarded)(nil).Len() != 0 {
		t.Error("a nil Forwarded adds entries")
	}
}

func TestHostForwarded(t *testing.T) {
	if addr, err := hostAddress("10.9.8.7"); err != nil || addr != "10.9.8.7" {
		t.Errorf("hostAddress with DAPR_HOST_IP = %q, %v", addr, err)
	}
	if addr, err := hostAddress(""); err == nil && net.ParseIP(addr) == nil {
		t.Errorf("hostAddress = %q, not an IP", addr)
	}
	var none *Forwarded
	empty := Metadata{}
	none.AddTo(empty)
	if len(empty) != 0 {
		t.Errorf("a nil Forwarded added %v", empty)
	}

	f := HostForwarded("10.9.8.7")
	md := Metadata{}
	f.AddTo(md)
	if got := md["x-forwarded-for"].GetValues(); !slices.Equal(got, []string{"10.9.8.7"}) {
		t.Errorf("x-forwarded-for = %q, want DAPR_HOST_IP's 10.9.8.7", got)
	}
	if name, err := os.Hostname(); err == nil {
		if got := md["x-forwarded-host"].GetValues(); !slices.Equal(got, []string{name}) {
			t.Errorf("x-forwarded-host = %q, want the host name %q", got, name)
		}
	}
	if len(md["forwarded"].GetValues()) != 1 {
		t.Errorf("forwarded = %v", md["forwarded"])
	}
}
