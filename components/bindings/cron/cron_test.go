package cron

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/bindingstest"
)

func md(schedule string) components.Metadata {
	return components.Metadata{Name: "c", Type: Type, Properties: map[string]string{"schedule": schedule}}
}

func TestContract(t *testing.T) {
	bindingstest.Run(t, bindingstest.Config{
		New:      func() bindings.Binding { return New(nil) },
		Metadata: func(*testing.T) components.Metadata { return md("@every 1s") },
	})
}

var scheduleCases = []struct {
	schedule string
	wantErr  bool
}{
	{"@every 1s", false},
	{"@every 300ms", false},
	{"*/15 * * * * *", false},
	{"0 30 * * * *", false},
	{"30 * * * *", false},
	{"@hourly", false},
	{"@daily", false},
	{"", true},
	{"every second", true},
	{"@every", true},
	{"61 * * * * *", true},
}

func TestParseSchedule(t *testing.T) {
	for _, c := range scheduleCases {
		_, err := parseSchedule(md(c.schedule))
		if (err != nil) != c.wantErr {
			t.Errorf("schedule %q: err = %v, want error %v", c.schedule, err, c.wantErr)
		}
	}
	err := New(nil).Init(context.Background(), md("nope"))
	if !components.IsPermanent(err) {
		t.Errorf("a bad schedule must fail Init for good, got %v", err)
	}
}

func TestReadFires(t *testing.T) {
	b := New(nil)
	if err := b.Init(context.Background(), md("@every 50ms")); err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	got := make(chan map[string]string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Read(ctx, func(_ context.Context, ev *bindings.Event) ([]byte, error) {
			if n.Add(1) <= 3 {
				got <- ev.Metadata
			}
			return nil, nil
		})
	}()
	for range 3 {
		select {
		case m := <-got:
			if m["readTimeUTC"] == "" || m["timeZone"] == "" {
				t.Errorf("metadata = %v", m)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("cron did not fire")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
