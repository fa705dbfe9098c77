package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/internal/syncbuf"
)

// records returns the JSON log records in b so far.
func records(b *syncbuf.Buffer) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(b.String(), "\n") {
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
	logs := &syncbuf.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	done := make(chan error, 1)
	go func() { done <- runSidecar(context.Background(), o, log, func() {}) }()

	var httpAddr string
	for deadline := time.Now().Add(10 * time.Second); httpAddr == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, r := range records(logs) {
			if r["msg"] == "sidecar serving" {
				httpAddr, _ = r["http"].(string)
			}
		}
	}
	if httpAddr == "" {
		t.Fatalf("the sidecar never served; logs:\n%v", records(logs))
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
	for _, r := range records(logs) {
		if lvl := r["level"]; lvl == "ERROR" || (lvl == "WARN" && r["task"] != nil) {
			t.Errorf("unexpected log record during start or stop: %v", r)
		}
	}
}

// TestComponentFailureExitsWithSignal: a component that stops the sidecar
// makes the root fail even when the shutdown began with a signal before
// the components task took the error (Dapr's resources/workflow once saw
// tandemd exit 0: its test stops daprd as soon as the error is logged).
func TestComponentFailureExitsWithSignal(t *testing.T) {
	dir := t.TempDir()
	comp := "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: myworkflow\nspec:\n  type: workflow.dapr\n  version: v1\n"
	if err := os.WriteFile(filepath.Join(dir, "wf.yaml"), []byte(comp), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := ParseFlags([]string{"--app-id", "lone", "--dapr-http-port", "0", "--dapr-grpc-port", "0", "--dapr-internal-grpc-port", "0",
		"--dapr-listen-addresses", "127.0.0.1", "--enable-metrics=false", "--resources-path", dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	signalled, cancel := context.WithCancel(context.Background())
	cancel()
	err = runSidecar(signalled, o, slog.New(slog.DiscardHandler), func() {})
	want := "process component myworkflow error: incorrect type workflow.dapr"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("runSidecar = %v, want an error containing %q", err, want)
	}
}
