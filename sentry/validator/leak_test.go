package validator

import (
	"os"
	"testing"

	"github.com/tandemrun/tandem/internal/kubetest"
)

// kube is the API server the package's tests share.
var kube *kubetest.Env

// TestMain starts one API server with Dapr's CRDs for the package; the run fails when a
// goroutine the tests started is still running after the last one.
func TestMain(m *testing.M) {
	kube = kubetest.Start("../../deploy/helm/tandem/crds")
	os.Exit(kube.Run(m))
}
