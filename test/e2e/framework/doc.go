// Package framework starts real Tandem processes for end-to-end tests: it
// builds the binaries once per test run, starts sentry, sidecars and apps on
// random loopback ports, waits until each is ready, and stops them (dumping
// their logs when a test fails).
package framework
