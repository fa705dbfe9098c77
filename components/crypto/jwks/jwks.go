// Package jwks is the crypto.dapr.jwks component: keys, found by their
// "kid", from a JSON Web Key Set given in the "jwks" metadata as a URL
// (http or https, fetched at start and again every minRefreshInterval,
// each fetch bounded by requestTimeout), a path to a file (re-read when it
// changes), or the JSON itself (optionally base64-encoded), as daprd
// reads it.
package jwks

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/crypto"
)

// Type is the Dapr component type.
const Type = "crypto.dapr.jwks"

const (
	defaultRequestTimeout     = 30 * time.Second
	defaultMinRefreshInterval = 10 * time.Minute
	maxBody                   = 4 << 20
)

// Store holds a key set.
type Store struct {
	log *slog.Logger

	mu      sync.RWMutex
	keys    map[string]*crypto.Key
	file    string
	modTime time.Time

	cancel context.CancelFunc
	done   chan struct{}
}

// New returns an uninitialised store.
func New(log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log}
}

var _ crypto.KeyStore = (*Store)(nil)

// Init loads the key set; a URL that cannot be fetched is retried by the
// component manager, anything else is permanent.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	loc := md.String("jwks", "")
	if loc == "" {
		return components.Permanent(fmt.Errorf("component %q: metadata property 'jwks' is required: a URL, a file path or the JSON key set", md.Name))
	}
	timeout, err := duration(md, "requestTimeout", defaultRequestTimeout, time.Millisecond)
	if err != nil {
		return components.Permanent(err)
	}
	refresh, err := duration(md, "minRefreshInterval", defaultMinRefreshInterval, time.Second)
	if err != nil {
		return components.Permanent(err)
	}
	s.log = s.log.With("component", md.Name)
	switch {
	case strings.HasPrefix(loc, "https://") || strings.HasPrefix(loc, "http://"):
		client := &http.Client{Timeout: timeout}
		if err := s.fetch(ctx, client, loc); err != nil {
			return err
		}
		rctx, cancel := context.WithCancel(context.Background())
		s.cancel, s.done = cancel, make(chan struct{})
		go s.refresh(rctx, client, loc, refresh)
		return nil
	case isFile(loc):
		s.file = loc
		if err := s.reload(); err != nil {
			return components.Permanent(err)
		}
		return nil
	}
	raw := []byte(loc)
	if b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(loc, "=")); err == nil {
		raw = b
	}
	keys, err := crypto.ParseJWKS(raw)
	if err != nil {
		return components.Permanent(fmt.Errorf("component %q: failed to parse property 'jwks': not a URL, path to local file, or JSON value (optionally base64-encoded): %w", md.Name, err))
	}
	s.set(keys)
	return nil
}

func duration(md components.Metadata, name string, def, least time.Duration) (time.Duration, error) {
	v := md.String(name, "")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("component %q: metadata %q: %q is not a duration such as 30s", md.Name, name, v)
	}
	if d < least {
		return def, nil
	}
	return d, nil
}

func isFile(p string) bool {
	info, err := os.Stat(p)
	return err == nil && !info.IsDir()
}

func (s *Store) set(keys []*crypto.Key) {
	m := make(map[string]*crypto.Key, len(keys))
	for _, k := range keys {
		if k.ID != "" {
			m[k.ID] = k
		}
	}
	s.mu.Lock()
	s.keys = m
	s.mu.Unlock()
}

func (s *Store) fetch(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return components.Permanent(err)
	}
	res, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch JWKS from %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch JWKS from %s: status %s", url, res.Status)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return fmt.Errorf("fetch JWKS from %s: %w", url, err)
	}
	keys, err := crypto.ParseJWKS(body)
	if err != nil {
		return fmt.Errorf("JWKS from %s: %w", url, err)
	}
	s.set(keys)
	return nil
}

// refresh fetches the key set every interval until ctx ends; a failed
// fetch keeps the last set.
func (s *Store) refresh(ctx context.Context, client *http.Client, url string, every time.Duration) {
	defer close(s.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.fetch(ctx, client, url); err != nil && ctx.Err() == nil {
				s.log.Warn("JWKS refresh failed; keeping the keys fetched before", "error", err)
			}
		}
	}
}

// reload re-reads the file if it changed since the last read.
func (s *Store) reload() error {
	info, err := os.Stat(s.file)
	if err != nil {
		return fmt.Errorf("read JWKS file: %w", err)
	}
	s.mu.RLock()
	same := s.keys != nil && info.ModTime().Equal(s.modTime)
	s.mu.RUnlock()
	if same {
		return nil
	}
	raw, err := os.ReadFile(s.file)
	if err != nil {
		return fmt.Errorf("read JWKS file: %w", err)
	}
	keys, err := crypto.ParseJWKS(raw)
	if err != nil {
		return fmt.Errorf("JWKS file %s: %w", s.file, err)
	}
	s.set(keys)
	s.mu.Lock()
	s.modTime = info.ModTime()
	s.mu.Unlock()
	return nil
}

// Key returns the key whose kid is name.
func (s *Store) Key(_ context.Context, name string) (*crypto.Key, error) {
	if s.file != "" {
		if err := s.reload(); err != nil {
			s.log.Warn("JWKS file not re-read; using the keys read before", "error", err)
		}
	}
	s.mu.RLock()
	k, ok := s.keys[name]
	s.mu.RUnlock()
	if !ok {
		if s.keys == nil {
			return nil, errors.New("no JWKS loaded")
		}
		return nil, crypto.ErrKeyNotFound
	}
	return k, nil
}

// Close stops the refresh of a URL key set.
func (s *Store) Close() error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	return nil
}
