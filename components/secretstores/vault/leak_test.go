package vault

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/tandemrun/tandem/internal/kubetest"
)

// TestMain fails the package's tests when a goroutine they started is still
// running after the last one (but those client-go keeps for the process,
// from the Kubernetes auth test).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, kubetest.IgnoreClientGo()...)
}
