package sqlite

import (
	"strings"
	"testing"
	"time"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		cfg     map[string]any
		check   func(Options) bool
		wantErr string
	}{
		{
			name: "Dapr defaults",
			cfg:  map[string]any{"connectionString": "nr.db"},
			check: func(o Options) bool {
				return o.UpdateInterval == 5*time.Second && o.Timeout == time.Second &&
					o.BusyTimeout == 800*time.Millisecond && o.TableName == "hosts" &&
					o.MetadataTableName == "metadata" && o.CleanupInterval == time.Hour && !o.DisableWAL
			},
		},
		{
			name: "all keys",
			cfg: map[string]any{"connectionString": "nr.db", "updateInterval": "10s", "timeout": 2,
				"busyTimeout": "100ms", "tableName": "h", "metadataTableName": "m", "cleanupInterval": "10m", "disableWAL": "true"},
			check: func(o Options) bool {
				return o.UpdateInterval == 10*time.Second && o.Timeout == 2*time.Second &&
					o.BusyTimeout == 100*time.Millisecond && o.TableName == "h" && o.MetadataTableName == "m" &&
					o.CleanupInterval == 10*time.Minute && o.DisableWAL
			},
		},
		{
			name:  "aliases",
			cfg:   map[string]any{"url": "nr.db", "timeoutInSeconds": "3", "cleanupIntervalInSeconds": 60, "updateInterval": "5s"},
			check: func(o Options) bool { return o.Timeout == 3*time.Second && o.CleanupInterval == time.Minute },
		},
		{name: "missing connection string", cfg: map[string]any{}, wantErr: "connectionString"},
		{name: "short timeout", cfg: map[string]any{"connectionString": "x", "timeout": "500ms"}, wantErr: "at least 1s"},
		{name: "fractional update interval", cfg: map[string]any{"connectionString": "x", "updateInterval": "2500ms"}, wantErr: "whole seconds"},
		{name: "update interval too close to timeout", cfg: map[string]any{"connectionString": "x", "updateInterval": "2s", "timeout": "2s"}, wantErr: "1s greater"},
		{name: "bad table name", cfg: map[string]any{"connectionString": "x", "tableName": "h; DROP"}, wantErr: "tableName"},
		{name: "bad duration", cfg: map[string]any{"connectionString": "x", "cleanupInterval": "often"}, wantErr: "cleanupInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOptions(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(o) {
				t.Fatalf("unexpected options %+v", o)
			}
		})
	}
}

func TestDSN(t *testing.T) {
	tests := []struct {
		name, cs string
		wal      bool
		want     string
	}{
		{"path", "/tmp/nr.db", false, "file:/tmp/nr.db?_pragma=busy_timeout%28800%29&_pragma=journal_mode%28WAL%29&_txlock=immediate"},
		{"file URI keeps query", "file:nr.db?mode=rwc", false, "file:nr.db?_pragma=busy_timeout%28800%29&_pragma=journal_mode%28WAL%29&_txlock=immediate&mode=rwc"},
		{"WAL disabled", "nr.db", true, "file:nr.db?_pragma=busy_timeout%28800%29&_pragma=journal_mode%28DELETE%29&_txlock=immediate"},
		{"memory", ":memory:", false, "file::memory:?_pragma=busy_timeout%28800%29&_pragma=journal_mode%28MEMORY%29&_txlock=immediate&cache=shared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOptions(map[string]any{"connectionString": tt.cs, "disableWAL": tt.wal})
			if err != nil {
				t.Fatal(err)
			}
			got, err := o.dsn()
			if err != nil || got != tt.want {
				t.Fatalf("dsn = %q, %v\nwant %q", got, err, tt.want)
			}
		})
	}
}

func TestRegistrationIDIsUUIDv4(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := newRegistrationID()
		if len(id) != 36 || id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) || strings.Count(id, "-") != 4 {
			t.Fatalf("%q is not a UUIDv4", id)
		}
		if seen[id] {
			t.Fatalf("duplicate %q", id)
		}
		seen[id] = true
	}
}
