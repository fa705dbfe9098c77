// Command tandemd is Tandem's sidecar, a drop-in for Dapr's daprd: it takes
// daprd's flags and environment, serves the Dapr HTTP and gRPC APIs to its
// app, and calls other apps' sidecars over SPIFFE mutual TLS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	boot := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts, err := ParseFlags(args, os.Getenv, boot)
	if errors.Is(err, flag.ErrHelp) {
		Usage(os.Stderr)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tandemd: %v\nRun tandemd --help for the list of flags.\n", err)
		return 2
	}
	if opts.ShowVersion || opts.BuildInfo {
		fmt.Println(version)
		return 0
	}
	log := newLogger(opts)
	quietRedis(log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runSidecar(ctx, opts, log); err != nil {
		log.Error("tandemd stopped with an error", "error", err)
		return 1
	}
	return 0
}

func newLogger(o *Options) *slog.Logger {
	hopts := &slog.HandlerOptions{Level: o.SlogLevel()}
	var h slog.Handler
	if o.LogAsJSON {
		h = slog.NewJSONHandler(os.Stderr, hopts)
	} else {
		h = slog.NewTextHandler(os.Stderr, hopts)
	}
	return slog.New(h).With("app_id", o.AppID, "scope", "tandemd")
}
