package loadreport

import (
	"math"
	"testing"
	"time"
)

func TestRate(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	var r Rate
	for i := range 10 {
		r.Add(t0.Add(time.Duration(i) * 100 * time.Millisecond)) // 10 in the first second
	}
	if got := r.PerSecond(t0.Add(900 * time.Millisecond)); got != 10 {
		t.Errorf("after 1 s: %v/s, want 10", got)
	}
	for i := range 10 {
		r.Add(t0.Add(time.Second + time.Duration(i)*100*time.Millisecond))
	}
	if got := r.PerSecond(t0.Add(1900 * time.Millisecond)); got != 10 {
		t.Errorf("after 2 s: %v/s, want 10", got)
	}
	// 20 events in a minute-long window.
	if got, want := r.PerSecond(t0.Add(59*time.Second)), 20.0/60; math.Abs(got-want) > 1e-9 {
		t.Errorf("after 60 s: %v/s, want %v", got, want)
	}
	// The first second has left the window.
	if got, want := r.PerSecond(t0.Add(60*time.Second)), 10.0/60; math.Abs(got-want) > 1e-9 {
		t.Errorf("after 61 s: %v/s, want %v", got, want)
	}
	if got := r.PerSecond(t0.Add(10 * time.Minute)); got != 0 {
		t.Errorf("long after: %v/s, want 0", got)
	}
	// A bucket reused a window later starts from zero.
	r.Add(t0.Add(10*time.Minute + 500*time.Millisecond))
	if got, want := r.PerSecond(t0.Add(10*time.Minute+500*time.Millisecond)), 1.0/60; math.Abs(got-want) > 1e-9 {
		t.Errorf("after reuse: %v/s, want %v", got, want)
	}
}

func TestPending(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	tests := []struct {
		name string
		s    Subscription
		want int64
	}{
		{"broker", Subscription{Backlog: n(7), Unacked: n(3), InFlight: 2}, 10},
		{"no broker figures", Subscription{InFlight: 2}, 2},
		{"half", Subscription{Backlog: n(7), InFlight: 2}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.s.Pending(); got != tt.want {
				t.Errorf("Pending = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	b := int64(4)
	in := Report{AppID: "orders", Namespace: "default", InvocationsInFlight: 2, ActiveActors: 3,
		Subscriptions: []Subscription{{PubsubName: "ps", Topic: "t", Backlog: &b, Unacked: &b, InFlight: 1, Delivered: 9, DeliveryRate: 1.5, OldestPendingAgeSeconds: 2}}}
	out, err := Parse(in.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if out.Marshal() != in.Marshal() {
		t.Errorf("round trip: %s, want %s", out.Marshal(), in.Marshal())
	}
	for _, bad := range []string{"", "{}", `{"appId":"a","subscriptions":[{"topic":"t"}]}`, "[1]"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded; want an error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(`{"appId":"a","subscriptions":[{"pubsubName":"p","topic":"t","backlog":3,"unacked":1,"inFlight":1}]}`)
	f.Add(`{"appId":"a","invocationsInFlight":-1}`)
	f.Add(`{"appId":""}`)
	f.Add(`nul`)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(r.Marshal())
		if err != nil {
			t.Fatalf("a parsed report does not parse again: %v", err)
		}
		if again.Marshal() != r.Marshal() {
			t.Fatalf("not stable: %s then %s", r.Marshal(), again.Marshal())
		}
	})
}
