package home

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/tandemrun/tandem/sentry/ca"
)

// InitOptions configure Init.
type InitOptions struct {
	// Force rewrites every file (a new CA and join token included).
	Force bool
	// Now is used for certificate validity; time.Now if zero.
	Now time.Time
}

// Written is one file Init considered.
type Written struct {
	Path    string
	Created bool   // false: it existed and was kept
	What    string // what the file is, for the user
}

// Init creates the home folder with the default resources, the local CA and
// a join token. Existing files are kept unless o.Force; the result lists
// every file and whether it was written.
func (h *Home) Init(o InitOptions) ([]Written, error) {
	for _, d := range []string{h.Dir, h.ResourcesDir(), h.CertsDir(), h.AppsDir(), h.LogsDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	var out []Written
	files := []struct {
		path, what, body string
		perm             fs.FileMode
	}{
		{filepath.Join(h.ResourcesDir(), "statestore.yaml"), "state store \"statestore\" (state.sqlite in " + filepath.Base(h.StateDB()) + ")", stateStoreYAML(h), 0o644},
		{filepath.Join(h.ResourcesDir(), "pubsub.yaml"), "pub/sub \"pubsub\" (pubsub.sqlite in " + filepath.Base(h.PubSubDB()) + ", shared by the apps on this machine)", pubsubYAML(h), 0o644},
		{filepath.Join(h.ResourcesDir(), "secretstore.yaml"), "secret store \"localsecretstore\" (secretstores.local.file reading " + filepath.Base(h.SecretsFile()) + ")", secretStoreYAML(h), 0o644},
		{filepath.Join(h.ResourcesDir(), "resiliency.yaml"), "resiliency policies (timeouts and retries for the default components)", resiliencyYAML, 0o644},
		{h.SecretsFile(), "secrets for the local file secret store", "{\n  \"greeting\": \"hello from tandem\"\n}\n", 0o600},
		{h.ConfigFile(), "Configuration (mTLS on, sqlite name resolution in " + filepath.Base(h.RegistryDB()) + ", tracing off)", configYAML(h), 0o644},
	}
	for _, f := range files {
		created, err := writeFile(f.path, []byte(f.body), f.perm, o.Force)
		if err != nil {
			return out, err
		}
		out = append(out, Written{Path: f.path, Created: created, What: f.what})
	}

	tokenCreated, err := h.writeJoinToken(o.Force)
	if err != nil {
		return out, err
	}
	out = append(out, Written{Path: h.JoinTokenFile(), Created: tokenCreated, What: "sentry join token (sidecars present it to get certificates)"})

	paths := ca.DefaultPaths(h.CertsDir())
	if o.Force {
		for _, p := range []string{paths.RootCert, paths.IssuerCert, paths.IssuerKey} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return out, fmt.Errorf("remove %s: %w", p, err)
			}
		}
	}
	bundle, generated, err := ca.LoadOrGenerate(paths, ca.GenerateOptions{TrustDomain: TrustDomain, Now: o.Now})
	if err != nil {
		return out, fmt.Errorf("local CA in %s: %w (remove the folder or run `tandem init --force`)", h.CertsDir(), err)
	}
	root := bundle.TrustAnchors[0]
	out = append(out,
		Written{Path: paths.RootCert, Created: generated, What: "root certificate (trust anchors), expires " + root.NotAfter.Format(time.DateOnly)},
		Written{Path: paths.IssuerCert, Created: generated, What: "issuer certificate, expires " + bundle.IssuerChain[0].NotAfter.Format(time.DateOnly)},
		Written{Path: paths.IssuerKey, Created: generated, What: "issuer private key"},
	)
	return out, nil
}

func (h *Home) writeJoinToken(force bool) (bool, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return false, err
	}
	return writeFile(h.JoinTokenFile(), []byte(hex.EncodeToString(b)+"\n"), 0o600, force)
}

// writeFile writes data to path unless it exists and !force. It writes a
// temporary file and renames it, so a reader never sees half a file.
func writeFile(path string, data []byte, perm fs.FileMode, force bool) (bool, error) {
	if !force {
		if _, err := os.Stat(path); err == nil {
			return false, nil
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
}
