package runner

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// EnvSidecarPath names the sidecar binary explicitly.
const EnvSidecarPath = "TANDEM_SIDECAR_PATH"

// FindSidecar locates the tandemd binary: $TANDEM_SIDECAR_PATH, else next
// to the tandem executable exe (where `go install ./cmd/...` puts both),
// else on PATH.
func FindSidecar(exe string, getenv func(string) string) (string, error) {
	if p := getenv(EnvSidecarPath); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("%s=%s is not an executable file", EnvSidecarPath, p)
	}
	if exe != "" {
		if p := filepath.Join(filepath.Dir(exe), "tandemd"); isExecutable(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath("tandemd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("cannot find the tandemd sidecar binary next to %s or on PATH: install both binaries with "+
		"`go install github.com/tandemrun/tandem/cmd/...@latest` (or `go install ./cmd/...` in a checkout), or set %s", exe, EnvSidecarPath)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
