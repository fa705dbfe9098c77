// Package home is the user's Tandem folder (~/.tandem by default): where it
// is, what `tandem init` writes into it, and the paths other commands read.
//
// Layout:
//
//	resources/      statestore.yaml, pubsub.yaml, secretstore.yaml, resiliency.yaml
//	config.yaml     Configuration: mTLS on, sqlite name resolution, tracing off
//	certs/          ca.crt, issuer.crt, issuer.key (the local CA)
//	join-token      the sentry join token sidecars present
//	state.db, pubsub.db, registry.db, secrets.json
//	run/            sentry.json, apps/<app-id>.json, logs/
//
// Only cmd/tandem and its other internal packages import it.
package home

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EnvHome overrides the default home folder.
const EnvHome = "TANDEM_HOME"

// TrustDomain is the SPIFFE trust domain of the local sentry; workload
// certificates use the Configuration's trust domain ("public" unless set).
const TrustDomain = "localhost"

// Home is a Tandem home folder.
type Home struct {
	Dir string
}

// Resolve picks the home folder: flag if set, else $TANDEM_HOME, else
// ~/.tandem.
func Resolve(flag string, getenv func(string) string) (*Home, error) {
	dir := flag
	if dir == "" {
		dir = getenv(EnvHome)
	}
	if dir == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("find the home folder: %w (set %s or pass --home)", err, EnvHome)
		}
		dir = filepath.Join(h, ".tandem")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("home folder %s: %w", dir, err)
	}
	return &Home{Dir: abs}, nil
}

// Paths inside the home folder.
func (h *Home) ResourcesDir() string  { return filepath.Join(h.Dir, "resources") }
func (h *Home) ConfigFile() string    { return filepath.Join(h.Dir, "config.yaml") }
func (h *Home) CertsDir() string      { return filepath.Join(h.Dir, "certs") }
func (h *Home) TrustAnchors() string  { return filepath.Join(h.CertsDir(), "ca.crt") }
func (h *Home) JoinTokenFile() string { return filepath.Join(h.Dir, "join-token") }
func (h *Home) StateDB() string       { return filepath.Join(h.Dir, "state.db") }
func (h *Home) PubSubDB() string      { return filepath.Join(h.Dir, "pubsub.db") }
func (h *Home) RegistryDB() string    { return filepath.Join(h.Dir, "registry.db") }
func (h *Home) SecretsFile() string   { return filepath.Join(h.Dir, "secrets.json") }
func (h *Home) RunDir() string        { return filepath.Join(h.Dir, "run") }
func (h *Home) AppsDir() string       { return filepath.Join(h.RunDir(), "apps") }
func (h *Home) LogsDir() string       { return filepath.Join(h.RunDir(), "logs") }
func (h *Home) SentryFile() string    { return filepath.Join(h.RunDir(), "sentry.json") }
func (h *Home) SentryLock() string    { return filepath.Join(h.RunDir(), "sentry.lock") }
func (h *Home) SentryLog() string     { return filepath.Join(h.LogsDir(), "sentry.log") }

// AppLog and SidecarLog are the log files of one app's last run.
func (h *Home) AppLog(appID string) string {
	return filepath.Join(h.LogsDir(), appID+".app.log")
}

// SidecarLog is the sidecar's log file for appID.
func (h *Home) SidecarLog(appID string) string {
	return filepath.Join(h.LogsDir(), appID+".sidecar.log")
}

// ErrNotInitialized means `tandem init` has not been run for this home.
var ErrNotInitialized = errors.New("tandem is not initialised")

// Check returns ErrNotInitialized (wrapped with what to do) unless init ran.
func (h *Home) Check() error {
	for _, p := range []string{h.ConfigFile(), h.TrustAnchors(), h.JoinTokenFile()} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w in %s (%s is missing): run `tandem init` first", ErrNotInitialized, h.Dir, filepath.Base(p))
		}
	}
	return nil
}

// JoinToken reads the join token.
func (h *Home) JoinToken() (string, error) {
	b, err := os.ReadFile(h.JoinTokenFile())
	if err != nil {
		return "", fmt.Errorf("read join token: %w (run `tandem init`)", err)
	}
	tok, _, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	if tok == "" {
		return "", fmt.Errorf("join token file %s is empty: run `tandem init --force`", h.JoinTokenFile())
	}
	return tok, nil
}
