package api

import "strings"

// ForceShutdownKey is the HTTP header and gRPC metadata key of the shutdown
// API that, when "true", asks the sidecar to exit at once with status 1
// instead of shutting down gracefully (Dapr's dapr-force-shutdown).
const ForceShutdownKey = "dapr-force-shutdown"

// Shutdown log lines, as daprd writes them (tools watch for them).
const (
	LogShutdownRequested = "Shutdown requested via API"
	LogForceShutdown     = "Force shutdown requested, exiting immediately without graceful shutdown"
)

// IsForceShutdown reports whether the values of ForceShutdownKey ask for a
// forced shutdown: any of them is "true", in any case.
func IsForceShutdown(values []string) bool {
	for _, v := range values {
		if strings.EqualFold(strings.TrimSpace(v), "true") {
			return true
		}
	}
	return false
}
