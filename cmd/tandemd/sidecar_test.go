package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink the sidecar's goroutines write concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// records returns the JSON log records so far.
func (b *syncBuffer) records() []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(b.buf.String(), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

// TestSidecarShutdownAPI runs the composition root in process with sqlite
// name resolution, asks it to shut down through the API, and checks that it
// exits cleanly, having registered while serving and deregistered once
// stopped.
func TestSidecarShutdownAPI(t *testing.T) {
	dir := t.TempDir()
	registry := filepath.Join(dir, "registry.db")
	config := filepath.Join(dir, "config.yaml")
	cfg := fmt.Sprintf("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: t\nspec:\n  nameResolution:\n    component: sqlite\n    configuration:\n      connectionString: %q\n", registry)
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := ParseFlags([]string{"--app-id", "lone", "--dapr-http-port", "0", "--dapr-grpc-port", "0", "--dapr-internal-grpc-port", "0",
		"--dapr-listen-addresses", "127.0.0.1", "--enable-metrics=false", "--config", config, "--resources-path", dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	done := make(chan error, 1)
	go func() { done <- runSidecar(context.Background(), o, log, func() {}) }()

	var httpAddr string
	for deadline := time.Now().Add(10 * time.Second); httpAddr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, r := range logs.records() {
			if r["msg"] == "sidecar serving" {
				httpAddr, _ = r["http"].(string)
			}
		}
	}
	if httpAddr == "" {
		t.Fatalf("the sidecar never served; logs:\n%v", logs.records())
	}
	db, err := sql.Open("sqlite", registry)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows := func() int {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM hosts WHERE app_id = 'lone'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows(); n != 1 {
		t.Fatalf("%d registrations while serving, want 1", n)
	}

	resp, err := http.Post("http://"+httpAddr+"/v1.0/shutdown", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("runSidecar = %v, want nil (exit 0) after the shutdown API", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("runSidecar did not return after the shutdown API")
	}
	if n := rows(); n != 0 {
		t.Errorf("%d registrations after shutdown, want 0 (deregistered)", n)
	}
	for _, r := range logs.records() {
		if lvl := r["level"]; lvl == "ERROR" || (lvl == "WARN" && r["task"] != nil) {
			t.Errorf("unexpected log record during start or stop: %v", r)
		}
	}
}
