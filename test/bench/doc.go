// Package bench holds Tandem's load benchmarks. They start real processes
// (sentry, sidecars, apps) like the end-to-end tests, drive them with fortio,
// and read CPU time and memory from /proc. They are opt-in: run them with
//
//	TANDEM_BENCH=1 go test ./test/bench -run TestInvokeLoad -v -timeout 20m
//
// Without TANDEM_BENCH=1 only the small unit tests of the helpers here run,
// so the normal `go test ./...` stays fast. See README.md for what each
// figure means and how it is measured.
package bench
