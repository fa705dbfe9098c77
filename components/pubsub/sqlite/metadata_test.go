package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
)

var parseConfigCases = []struct {
	name    string
	appID   string
	props   map[string]string
	wantErr string
	check   func(t *testing.T, c config)
}{
	{name: "defaults", appID: "app", props: map[string]string{"connectionString": "/tmp/p.db"}, check: func(t *testing.T, c config) {
		if c.consumerID != "app" || c.startFrom != startEarliest || c.processingTimeout != defaultProcessingTimeout ||
			c.pollInterval != defaultPollInterval || c.retention != defaultRetention || c.concurrency != 10 {
			t.Errorf("config %+v", c)
		}
	}},
	{name: "overrides", appID: "app", props: map[string]string{"connectionString": "p.db", "consumerID": "grp", "startFrom": "Latest",
		"processingTimeout": "5s", "pollInterval": "20ms", "retention": "1h", "concurrency": "3"}, check: func(t *testing.T, c config) {
		if c.consumerID != "grp" || c.startFrom != startLatest || c.processingTimeout != 5*time.Second ||
			c.pollInterval != 20*time.Millisecond || c.retention != time.Hour || c.concurrency != 3 {
			t.Errorf("config %+v", c)
		}
	}},
	{name: "no connection string", appID: "app", props: nil, wantErr: "connectionString is required"},
	{name: "in memory", appID: "app", props: map[string]string{"connectionString": ":memory:"}, wantErr: "in-memory"},
	{name: "memory uri", appID: "app", props: map[string]string{"connectionString": "file:x?mode=memory"}, wantErr: "in-memory"},
	{name: "no consumer", props: map[string]string{"connectionString": "p.db"}, wantErr: "consumerID"},
	{name: "bad startFrom", appID: "app", props: map[string]string{"connectionString": "p.db", "startFrom": "middle"}, wantErr: "startFrom"},
	{name: "bad duration", appID: "app", props: map[string]string{"connectionString": "p.db", "pollInterval": "often"}, wantErr: "pollInterval"},
	{name: "too short", appID: "app", props: map[string]string{"connectionString": "p.db", "processingTimeout": "1ms"}, wantErr: "too short"},
	{name: "bad concurrency", appID: "app", props: map[string]string{"connectionString": "p.db", "concurrency": "0"}, wantErr: "concurrency"},
}

func TestParseConfig(t *testing.T) {
	for _, tt := range parseConfigCases {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig(components.Metadata{Name: "ps", AppID: tt.appID, Properties: tt.props})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestDSN(t *testing.T) {
	tests := []struct {
		cs      string
		want    []string
		wantErr string
	}{
		{cs: "/data/p.db", want: []string{"file:/data/p.db?", "_txlock=immediate", "busy_timeout%285000%29", "journal_mode%28WAL%29", "synchronous%28NORMAL%29"}},
		{cs: "file:p.db?_pragma=synchronous(FULL)", want: []string{"file:p.db?", "synchronous%28FULL%29"}},
		{cs: "p.db?_pragma=busy_timeout(1)", wantErr: "busyTimeout"},
		{cs: "p.db?_pragma=journal_mode(DELETE)", wantErr: "WAL"},
		{cs: "p.db?mode=ro", wantErr: "read-only"},
		{cs: "p.db?%zz", wantErr: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.cs, func(t *testing.T) {
			got, err := config{connectionString: tt.cs, busyTimeout: defaultBusyTimeout}.dsn()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("dsn %q lacks %q", got, w)
				}
			}
			if strings.Contains(tt.cs, "FULL") && strings.Contains(got, "NORMAL") {
				t.Errorf("dsn %q overrides the connection string's synchronous", got)
			}
		})
	}
}

func TestPath(t *testing.T) {
	tests := []struct{ cs, want string }{
		{"/data/p.db", "/data/p.db"},
		{"p.db?_pragma=synchronous(FULL)", "p.db"},
		{"file:p.db?mode=rwc", "p.db"},
		{"FILE:/data/p.db", "/data/p.db"},
		{"file:///data/my%20p.db?cache=private", "/data/my p.db"},
		{"file://localhost/data/p.db", "/data/p.db"},
		{"file:/data/p.db#frag", "/data/p.db"},
	}
	for _, tt := range tests {
		if got := (config{connectionString: tt.cs}).path(); got != tt.want {
			t.Errorf("path of %q = %q, want %q", tt.cs, got, tt.want)
		}
	}
}

func TestNackDelay(t *testing.T) {
	tests := []struct {
		attempt int64
		cause   error
		want    time.Duration
	}{
		{1, errTest, 100 * time.Millisecond},
		{2, errTest, 200 * time.Millisecond},
		{4, errTest, 800 * time.Millisecond},
		{50, errTest, maxNackBackoff},
		{3, fmt.Errorf("stopping: %w", context.Canceled), 0},
	}
	for _, tt := range tests {
		if got := nackDelay(tt.attempt, tt.cause); got != tt.want {
			t.Errorf("nackDelay(%d, %v) = %s, want %s", tt.attempt, tt.cause, got, tt.want)
		}
	}
}

var errTest = errors.New("handler failed")
