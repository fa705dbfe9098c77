package bench

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestColdStart is the cold-start figure of TestInvokeLoad alone (the same
// sidecar flags: mTLS with sentry, sqlite name resolution, an app already
// listening), for iterating on start-up time without the load runs.
// TANDEM_BENCH_COLD_LOG=1 logs each start's timeline; TANDEM_BENCH_TANDEMD
// runs another tandemd.
func TestColdStart(t *testing.T) {
	if os.Getenv("TANDEM_BENCH") != "1" {
		t.Skip("benchmark: run it with TANDEM_BENCH=1 go test ./test/bench -run TestColdStart -v (see test/bench/README.md)")
	}
	set := settingsFromEnv(t)
	bins := benchBinaries(t)
	sentry := framework.StartSentry(t, bins, framework.SentryOptions{})
	app := framework.StartApp(t, "echo app", buildEchoApp(t, bins), "APP_ID=coldstart")
	registry := filepath.Join(t.TempDir(), "registry.db")
	outbound, healthz := coldStarts(t, bins, sentry, registry, app.Port, max(set.ColdStarts, 1))
	t.Logf("cold start to /v1.0/healthz/outbound: median %v of %s", median(outbound), list(outbound))
	t.Logf("cold start to /v1.0/healthz: median %v of %s", median(healthz), list(healthz))
}
