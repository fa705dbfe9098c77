package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"debug": slog.LevelDebug, "": slog.LevelInfo, "INFO": slog.LevelInfo, "warn": slog.LevelWarn,
		"Warning": slog.LevelWarn, "error": slog.LevelError, "fatal": LevelFatal,
	} {
		got, err := ParseLevel(in)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseLevel("loud"); err == nil || !strings.Contains(err.Error(), "use debug, info, warn, error or fatal") {
		t.Errorf("ParseLevel(loud) error = %v; want one naming the valid levels", err)
	}
}

func TestNew(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, slog.LevelWarn, true, "component", "x")
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("want exactly one JSON line, got %q: %v", buf.String(), err)
	}
	if line["msg"] != "shown" || line["component"] != "x" || line["k"] != float64(1) {
		t.Errorf("line = %v", line)
	}

	buf.Reset()
	New(&buf, LevelFatal, false).Error("hidden at fatal")
	if buf.Len() != 0 {
		t.Errorf("an error passed the fatal level: %q", buf.String())
	}
	New(&buf, slog.LevelInfo, false, "scope", "s").Info("text")
	if got := buf.String(); !strings.Contains(got, "msg=text") || !strings.Contains(got, "scope=s") {
		t.Errorf("text line = %q", got)
	}
}
