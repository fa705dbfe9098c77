package mqtt3

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when a goroutine they started is still
// running after the last one. Paho's reconnect loop is let be: a client
// that lost its connection (the broker drops a client ID that connects
// twice) and was then disconnected sleeps out its backoff, up to seconds,
// before it sees it was disconnected and returns.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/eclipse/paho%2emqtt%2egolang.(*client).reconnect"))
}
