package components

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestSocketsFolder(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "mine.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	if err := os.WriteFile(filepath.Join(dir, "file.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f := SocketsFolder(dir)
	if got, ok := f.Socket("pubsub", "pubsub.mine"); !ok || got != filepath.Join(dir, "mine.sock") {
		t.Errorf("Socket(pubsub.mine) = %q, %v", got, ok)
	}
	for _, typ := range []string{"pubsub.file", "pubsub.none", "state.mine", "pubsub.", "pubsub.../mine", "mine"} {
		if got, ok := f.Socket("pubsub", typ); ok {
			t.Errorf("Socket(%q) = %q, want none", typ, got)
		}
	}
	if got, ok := SocketsFolder("").Socket("pubsub", "pubsub.mine"); ok {
		t.Errorf("empty folder found %q", got)
	}

	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	if got := SocketsFolderFromEnv(getenv); got != DefaultSocketsFolder {
		t.Errorf("unset: %q", got)
	}
	env[SocketsFolderEnv] = dir
	if got := SocketsFolderFromEnv(getenv); got != f {
		t.Errorf("set: %q", got)
	}
}
