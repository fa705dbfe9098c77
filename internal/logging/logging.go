// Package logging builds the structured (log/slog) logger every Tandem binary
// writes with, from the --log-level and --log-as-json flags Dapr's binaries
// share.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// LevelFatal is Dapr's "fatal" level: above error, so only fatal messages pass.
const LevelFatal = slog.LevelError + 4

// ParseLevel reads a --log-level value: debug, info (or empty), warn (or
// warning), error or fatal, in any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	case "fatal":
		return LevelFatal, nil
	}
	return slog.LevelInfo, fmt.Errorf("--log-level %q is not valid; use debug, info, warn, error or fatal", s)
}

// New returns a logger writing text (or JSON when asJSON) lines to w at level
// and above, each carrying the attributes in with (key, value pairs).
func New(w io.Writer, level slog.Level, asJSON bool, with ...any) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if asJSON {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h).With(with...)
}
