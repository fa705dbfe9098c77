// Command tandemd is Tandem's sidecar, a drop-in for Dapr's daprd: it takes
// daprd's flags and environment, serves the Dapr HTTP and gRPC APIs to its
// app, and calls other apps' sidecars over SPIFFE mutual TLS.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"github.com/tandemrun/tandem/internal/logging"
)

// logStopped is logged after a graceful stop, in daprd's words (tools watch
// for the line).
const logStopped = "Daprd shutdown gracefully"

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// runtimeVersion is version as the metadata API reports it, in daprd's
// form: "1.2.3" (no leading v) for a release, "edge" for a build without a
// version, as daprd's own unreleased builds say.
func runtimeVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	if v == "" || v == "dev" {
		return "edge"
	}
	return v
}

func main() {
	setRuntimeDefaults(os.Getenv)
	// SIGINT and SIGTERM stay caught from here to the exit: run watches
	// them while the sidecar runs, and once it has returned, a signal (a
	// parent stopping a sidecar that is already on its way out after a
	// fatal error) ends the wait for the log to be read instead of killing
	// the process, whose exit status would then say "signal: interrupt"
	// rather than the sidecar's code.
	late := make(chan os.Signal, 1)
	signal.Notify(late, os.Interrupt, syscall.SIGTERM)
	code := run(os.Args[1:])
	finish(code, late, func() { waitStdoutRead(os.Stdout, stdoutDrainLimit) }, os.Exit)
}

// finish calls exit with code once drain has returned, or as soon as a
// signal comes on late while it waits. A signal already on late came while
// run was watching: run has dealt with it.
func finish(code int, late <-chan os.Signal, drain func(), exit func(int)) {
	select {
	case <-late:
	default:
	}
	drained := make(chan struct{})
	go func() {
		drain()
		close(drained)
	}()
	select {
	case <-drained:
	case <-late:
	}
	exit(code)
}

// setRuntimeDefaults tunes Go's runtime for a sidecar, unless the
// environment's GOMAXPROCS / GOGC say otherwise:
//
//   - one core (GOMAXPROCS=1). A sidecar shares its machine with the app it
//     serves; with a single P, a request's hand-offs between goroutines stay
//     on one thread instead of waking another (linkerd2-proxy runs one
//     worker by default too). Measured with test/bench on 2 cores: 16 % less
//     CPU per request at max rate, 25 % less at 1000 qps, 6 % more
//     throughput. A busy sidecar on a big machine can take more with
//     GOMAXPROCS=N.
//   - GOGC=150: the live heap is small (1–3 MiB), so at 100 the collector
//     runs dozens of times a second under load; 150 takes another 8 % off the
//     CPU per request for about 1.5 MiB more resident under load.
func setRuntimeDefaults(getenv func(string) string) {
	if getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(150)
	}
}

// stopHeapSampling turns off the heap profile's sampling when nothing can
// read it (no --enable-profiling) and GODEBUG does not set memprofilerate.
// By default Go records the stack of one allocation in every 512 KiB, in a
// hash table of buckets that only grows: under load each new stack touches
// another page of it: 0.2–0.6 MiB of a sidecar's private memory (RssAnon
// at TestInvokeLoad's max rate, GODEBUG=memprofilerate=0 against the
// default) that nobody ever reads. The samples taken during package
// initialisation stay.
func stopHeapSampling(getenv func(string) string) {
	if !strings.Contains(getenv("GODEBUG"), "memprofilerate=") {
		runtime.MemProfileRate = 0
	}
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
	if !opts.EnableProfiling {
		stopHeapSampling(os.Getenv)
	}
	log := newLogger(opts, os.Stdout)
	quietRedis(log)
	warnSkippedInit(log, opts)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	// A restart the sidecar asks for itself goes the way of a SIGHUP.
	restart := func() {
		select {
		case hup <- syscall.SIGHUP:
		default: // one is pending already
		}
	}
	err = runReloading(ctx, hup, log, func(ctx context.Context) error { return runSidecar(ctx, opts, log, restart) })
	if err != nil {
		// Includes a forced shutdown (proxy.ErrForcedShutdown): daprd
		// exits 1 then too. daprd's words: tools look for them.
		log.Error("Fatal error from runtime: " + err.Error())
		return 1
	}
	log.Info(logStopped)
	return 0
}

// warnSkippedInit logs, in daprd's words, the start-up call to the app's
// /dapr/config that --disable-init-endpoints config turns off.
func warnSkippedInit(log *slog.Logger, o *Options) {
	if slices.Contains(o.DisableInitEndpoints, "config") {
		log.Warn("Skipping programmatic dapr configuration loading (see 'disable-init-endpoints' flag/annotation)")
	}
}

// newLogger returns the sidecar's logger writing to w: standard output,
// where daprd logs (tools and tests that follow daprd's log read it there).
func newLogger(o *Options, w io.Writer) *slog.Logger {
	return logging.New(w, o.SlogLevel(), o.LogAsJSON, "app_id", o.AppID, "scope", "tandemd")
}
