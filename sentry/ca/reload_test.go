package ca

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReloader(t *testing.T) {
	dir := t.TempDir()
	paths := DefaultPaths(dir)
	oldB, err := GenerateBundle(GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := oldB.Write(paths); err != nil {
		t.Fatal(err)
	}
	newB, err := GenerateBundle(GenerateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *CA, 10)
	r := &Reloader{Paths: paths, Interval: 10 * time.Millisecond, OnReload: func(c *CA) { got <- c }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(30 * time.Millisecond) // let Run take its baseline

	write := func(path string, data []byte) {
		t.Helper()
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(what string, check func(*CA) bool) {
		t.Helper()
		select {
		case c := <-got:
			if !check(c) {
				t.Fatalf("%s: reloaded CA is not the expected one", what)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: no reload", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-got:
			t.Fatalf("%s: unexpected reload", what)
		case <-time.After(100 * time.Millisecond):
		}
	}

	// Same bytes again: no reload.
	write(paths.RootCert, oldB.TrustAnchorsPEM)
	quiet("rewrite with the same content")

	// A poll that catches the file half written sees no CA; the finished
	// file has the old bytes again, which is not a change either.
	write(paths.RootCert, oldB.TrustAnchorsPEM[:len(oldB.TrustAnchorsPEM)/2])
	time.Sleep(50 * time.Millisecond)
	write(paths.RootCert, oldB.TrustAnchorsPEM)
	quiet("the same content after a half-written file")

	// Step 1: bundle = old + new root; the old issuer keeps signing.
	write(paths.RootCert, append(append([]byte{}, oldB.TrustAnchorsPEM...), newB.TrustAnchorsPEM...))
	expect("root added", func(c *CA) bool {
		return len(c.TrustAnchors()) == 2 && c.Issuer().Equal(oldB.IssuerChain[0]) && c.ActiveRoot().Equal(oldB.TrustAnchors[0])
	})

	// Step 2, half done: the new issuer certificate with the old key does
	// not verify, so nothing is reloaded.
	write(paths.IssuerCert, newB.IssuerChainPEM)
	quiet("issuer certificate without its key")
	write(paths.IssuerKey, newB.IssuerKeyPEM)
	expect("new issuer", func(c *CA) bool {
		return c.Issuer().Equal(newB.IssuerChain[0]) && c.ActiveRoot().Equal(newB.TrustAnchors[0]) && len(c.TrustAnchors()) == 2
	})

	// Step 3: old root removed.
	write(paths.RootCert, newB.TrustAnchorsPEM)
	expect("old root removed", func(c *CA) bool { return len(c.TrustAnchors()) == 1 })

	// A missing file (being replaced) is not a change.
	if err := os.Rename(paths.RootCert, filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	quiet("file missing")
}

func TestReloaderNeedsCallback(t *testing.T) {
	if err := (&Reloader{}).Run(context.Background()); err == nil {
		t.Fatal("want error without OnReload")
	}
}
