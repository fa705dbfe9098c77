package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestProfilingServer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve, addrs, err := profilingTask([]string{"127.0.0.1"}, 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- serve.Run(ctx) }()
	if len(addrs) != 1 {
		t.Fatalf("addresses %v", addrs)
	}
	resp, err := http.Get("http://" + addrs[0] + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine profile:") {
		t.Fatalf("goroutine profile: %d %.200s", resp.StatusCode, b)
	}
	// A taken port is a start-up error that says what to do.
	_, port, _ := net.SplitHostPort(addrs[0])
	p := 0
	for _, c := range port {
		p = p*10 + int(c-'0')
	}
	if _, _, err := profilingTask([]string{"127.0.0.1"}, p, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "--profile-port") {
		t.Fatalf("second server on the same port: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("profiling server stopped with %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addrs[0], time.Second)
		if err != nil {
			break
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatal("profiling server still listening after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestProfilingFlags(t *testing.T) {
	o, err := ParseFlags([]string{"--app-id", "a", "--enable-profiling", "--profile-port", "7778"}, func(string) string { return "" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !o.EnableProfiling || o.ProfilePort != 7778 {
		t.Fatalf("EnableProfiling %v ProfilePort %d", o.EnableProfiling, o.ProfilePort)
	}
	for _, ig := range o.Ignored {
		if strings.Contains(ig, "profiling") {
			t.Fatalf("--enable-profiling still reported as ignored: %q", ig)
		}
	}
	if _, err := ParseFlags([]string{"--enable-profiling", "--profile-port", "x"}, func(string) string { return "" }, nil); err == nil {
		t.Fatal("--profile-port x accepted")
	}
}
