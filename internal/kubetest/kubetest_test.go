package kubetest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAssetsPrefersKubebuilderAssets(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kube-apiserver"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBEBUILDER_ASSETS", dir)
	got, err := Assets()
	if err != nil || got != dir {
		t.Fatalf("Assets() = %q, %v; want %q", got, err, dir)
	}
}

func TestRequireSkipsWithoutBinaries(t *testing.T) {
	t.Setenv("CI", "")
	e := &Env{missing: "no binaries"}
	ok := t.Run("inner", func(t *testing.T) {
		e.Require(t)
		t.Error("Require returned without an API server")
	})
	if !ok {
		t.Fatal("the inner test failed instead of skipping")
	}
}
