package pluggable

import "time"

// SetAckSettle sets ackSettle for a test and returns the function that
// restores it.
func SetAckSettle(d time.Duration) (restore func()) {
	prev := ackSettle
	ackSettle = d
	return func() { ackSettle = prev }
}
