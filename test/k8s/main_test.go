package k8s

import (
	"os"
	"testing"

	"github.com/tandemrun/tandem/internal/kubetest"
	"github.com/tandemrun/tandem/test/e2e/framework"
	"github.com/tandemrun/tandem/test/k8s/cluster"
)

var kube *kubetest.Env

func TestMain(m *testing.M) {
	kube = kubetest.StartWith(kubetest.Options{APIServerFlags: cluster.APIServerFlags})
	code := kube.Run(m)
	framework.Cleanup()
	os.Exit(code)
}
