package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"
)

// redisLogger sends go-redis's own log lines (it has a process-wide logger)
// to our structured log at debug level; the components report failures
// themselves.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}

func quietRedis(log *slog.Logger) { redis.SetLogger(redisLogger{log}) }
