package mdns

import (
	"context"
	"log"
	"log/slog"
	"strings"
)

// stdLogger routes github.com/hashicorp/mdns's *log.Logger output into the
// injected slog logger at debug level (it is chatty: every IPv6 bind
// failure, every unparsable packet on the LAN).
type stdLogger struct {
	logger *log.Logger
}

func newStdLogger(l *slog.Logger) *stdLogger {
	return &stdLogger{logger: log.New(writerFunc(func(p []byte) (int, error) {
		l.Log(context.Background(), slog.LevelDebug, strings.TrimSpace(string(p)), "source", "hashicorp/mdns")
		return len(p), nil
	}), "", 0)}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
