package registry

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func deadProc(t *testing.T) Proc {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true command:", err)
	}
	return Proc{PID: cmd.Process.Pid, Start: 1}
}

func TestProcAlive(t *testing.T) {
	self := NewProc(os.Getpid())
	tests := []struct {
		name string
		p    Proc
		want bool
	}{
		{"self", self, true},
		{"self, other start time (recycled pid)", Proc{PID: self.PID, Start: self.Start + 1}, self.Start == 0},
		{"exited", deadProc(t), false},
		{"zero", Proc{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Alive(); got != tt.want {
				t.Fatalf("Alive() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDir(t *testing.T) {
	d := Dir(filepath.Join(t.TempDir(), "apps"))
	self := NewProc(os.Getpid())
	dead := deadProc(t)
	if err := d.Save(&App{AppID: "live", CLI: self, HTTPPort: 1}); err != nil {
		t.Fatal(err)
	}
	if err := d.Save(&App{AppID: "stale", CLI: dead, Sidecar: dead}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(string(d), "junk.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	list, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].AppID != "live" || list[0].HTTPPort != 1 {
		t.Fatalf("List = %+v", list)
	}
	if _, err := os.Stat(filepath.Join(string(d), "stale.json")); !os.IsNotExist(err) {
		t.Fatal("stale record not removed")
	}
	if _, err := d.Get("stale"); err == nil {
		t.Fatal("Get(stale): want error")
	}
	// Remove only removes a record that belongs to the given CLI.
	if err := d.Remove("live", dead); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get("live"); err != nil {
		t.Fatal("record removed by another CLI")
	}
	if err := d.Remove("live", self); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Get("live"); err == nil {
		t.Fatal("record not removed")
	}
}

func TestSentryRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sentry.json")
	if _, err := LoadSentry(path); err == nil {
		t.Fatal("missing: want error")
	}
	if err := SaveSentry(path, &Sentry{Proc: deadProc(t), Address: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSentry(path); err == nil {
		t.Fatal("dead: want error")
	}
	if err := SaveSentry(path, &Sentry{Proc: NewProc(os.Getpid()), Address: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSentry(path)
	if err != nil || s.Address != "127.0.0.1:1" {
		t.Fatalf("%+v %v", s, err)
	}
}
