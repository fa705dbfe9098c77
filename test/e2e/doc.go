// Package e2e holds end-to-end tests: they build the real binaries and run
// sentry, sidecars and apps as separate processes on random loopback ports,
// using the Dapr Go SDK and plain HTTP as clients.
package e2e
