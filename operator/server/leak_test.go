package server

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/tandemrun/tandem/internal/kubetest"
)

// kube is the API server the package's tests share.
var kube *kubetest.Env

// TestMain starts one API server with Dapr's CRDs for the package, and
// fails the tests when a goroutine they started is still running after the
// last one.
func TestMain(m *testing.M) {
	kube = kubetest.Start("../../deploy/helm/tandem/crds")
	code := m.Run()
	kube.Stop()
	if code == 0 {
		if err := goleak.Find(kubetest.IgnoreClientGo()...); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
