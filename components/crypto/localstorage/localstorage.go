// Package localstorage is the crypto.dapr.localstorage component: keys
// are files in a folder (metadata "path"), one key per file named as the
// key. A ".json" file is a JWK, a ".pem" file PEM; any other file is
// guessed as daprd guesses (JWK, PEM, or a symmetric key as base64 or raw
// bytes). Files are read on every use, so a changed key applies at once.
package localstorage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/crypto"
)

// Type is the Dapr component type.
const Type = "crypto.dapr.localstorage"

// Store reads keys from a folder.
type Store struct {
	dir string
}

// New returns an uninitialised store.
func New() *Store { return &Store{} }

var _ crypto.KeyStore = (*Store)(nil)

// Init reads the "path" metadata: an existing folder.
func (s *Store) Init(_ context.Context, md components.Metadata) error {
	p := md.String("path", "")
	if p == "" {
		return components.Permanent(fmt.Errorf("component %q: metadata property 'path' is required: set it to the folder that holds the keys", md.Name))
	}
	p = filepath.Clean(p)
	info, err := os.Stat(p)
	if err != nil {
		return components.Permanent(fmt.Errorf("component %q: could not stat path '%s': %w", md.Name, p, err))
	}
	if !info.IsDir() {
		return components.Permanent(fmt.Errorf("component %q: path '%s' is not a directory", md.Name, p))
	}
	s.dir = p
	return nil
}

// Key reads the file named name in the folder.
func (s *Store) Key(_ context.Context, name string) (*crypto.Key, error) {
	if strings.Contains(name, "..") {
		return nil, errors.New("invalid key path: cannot contain '..'")
	}
	path := filepath.Join(s.dir, name)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("failed to load key '%s': %w", name, crypto.ErrKeyNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to load key '%s': %w", name, err)
	}
	var ct string
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		ct = crypto.ContentTypeJWK
	case ".pem":
		ct = crypto.ContentTypePEM
	}
	k, err := crypto.ParseKey(data, ct)
	if err != nil {
		return nil, fmt.Errorf("failed to parse key from secret: %w", err)
	}
	return k, nil
}

// Close does nothing: nothing is held open.
func (s *Store) Close() error { return nil }
