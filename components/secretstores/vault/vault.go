// Package vault is the secretstores.hashicorp.vault secret store: secrets
// are the entries of a HashiCorp Vault KV secrets engine, read with Vault's
// official Go client (github.com/hashicorp/vault/api).
//
// As in Dapr, secret NAME is the KV entry enginePath/[vaultKVPrefix/]NAME;
// a secret is all the entry's keys (vaultValueType map), or one value, the
// entry's data as text under the secret's own name (vaultValueType text).
// The request metadata version_id reads an older version of a KV v2 entry.
// A bulk read lists the entries under the prefix, folders included.
//
// Metadata (Dapr's names and defaults):
//
//	vaultAddr: https://127.0.0.1:8200
//	vaultToken: s.xxx              # or vaultTokenMountPath: a file holding it
//	caPem | caPath | caCert        # the CA to trust, in this order of precedence
//	skipVerify: false
//	tlsServerName: vault.internal
//	enginePath: secret             # the KV engine's mount
//	vaultKVPrefix: dapr            # the folder under it
//	vaultKVUsePrefix: true         # false: names are relative to the mount
//	vaultValueType: map            # or text
//	vaultNamespace: team-a         # Vault Enterprise namespace
//	vaultAuthMethod: token         # or kubernetes (Dapr's names below) or approle
//	vaultKubernetesRole, vaultKubernetesMountPath (kubernetes), vaultServiceAccountTokenPath
//
// Tandem's additions:
//
//	vaultKVVersion: 1 | 2          # default: asked of Vault (sys/internal/ui/mounts), else 2
//	vaultAuthMethod: approle with vaultAppRoleID, vaultAppRoleSecretID or
//	vaultAppRoleSecretIDPath, vaultAppRoleMountPath (default approle)
//
// Differences from Dapr, all where Dapr fails: a KV v1 mount works (Dapr
// reads only v2 paths); a value that is not a string (a number written
// through the API) is returned as its JSON text instead of failing the
// read; a login token is renewed, or replaced by a new login, before it
// expires and after Vault refuses it, and a vaultTokenMountPath file is
// read again when Vault refuses its token; Init fails while Vault is
// unreachable or sealed, so the sidecar retries it and the API answers
// "not ready" meanwhile.
package vault

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
)

// Type is the component type.
const Type = "secretstores.hashicorp.vault"

// requestTimeout bounds one call to Vault when the caller's context does
// not end sooner.
const requestTimeout = 30 * time.Second

// Store reads secrets from a Vault KV engine.
type Store struct {
	mu   sync.RWMutex
	conn *conn // nil before Init
	text bool
}

// conn is what Init sets up; it does not change afterwards.
type conn struct {
	cfg       config
	kv        int // the engine's KV version, 1 or 2
	transport *http.Transport
	auth      *authenticator
}

var _ secretstores.SecretStore = (*Store)(nil)

// New returns a store configured by Init.
func New() *Store { return &Store{} }

// Init parses the metadata, checks that Vault is up and unsealed, logs in
// (approle, kubernetes) and finds the engine's KV version. Bad metadata is
// a components.Permanent error (the sidecar stops, as daprd does); the
// rest (Vault down or sealed, a refused login, a token file not there yet)
// is retried.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err) // only an edit of the component fixes it
	}
	c, err := dial(ctx, cfg)
	if err != nil {
		return fmt.Errorf("component %q: %w", md.Name, err)
	}
	s.mu.Lock()
	old := s.conn
	s.conn, s.text = c, cfg.Text
	s.mu.Unlock()
	if old != nil {
		old.transport.CloseIdleConnections()
	}
	return nil
}

func dial(ctx context.Context, cfg config) (*conn, error) {
	// The client is configured from the metadata only: none of the VAULT_*
	// environment variables the client reads by default (the sidecar's
	// environment is not the component's configuration).
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	acfg := &api.Config{
		Address: cfg.Addr,
		HttpClient: &http.Client{
			Transport: transport,
			// The client follows Vault's redirects (to the active node) itself.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		MaxRetries: 0, // Resiliency policies retry, not the client
		// Clones (one per token) keep the namespace header.
		CloneHeaders: true,
	}
	t := &api.TLSConfig{Insecure: cfg.TLS.SkipVerify, TLSServerName: cfg.TLS.ServerName}
	// One CA source only, in Dapr's precedence (caPem, caPath, caCert): the
	// client would apply its own order if given several.
	switch {
	case cfg.TLS.CAPem != "":
		t.CACertBytes = []byte(cfg.TLS.CAPem)
	case cfg.TLS.CAPath != "":
		t.CAPath = cfg.TLS.CAPath
	case cfg.TLS.CACert != "":
		t.CACert = cfg.TLS.CACert
	}
	if err := acfg.ConfigureTLS(t); err != nil {
		// A CA that does not parse; a missing file may yet appear.
		err = fmt.Errorf("TLS configuration: %w", err)
		if cfg.TLS.CAPem != "" {
			err = components.Permanent(err)
		}
		return nil, err
	}
	client, err := api.NewClient(acfg)
	if err != nil {
		return nil, err
	}
	client.SetHeaders(http.Header{api.RequestHeaderName: {"true"}}) // drop VAULT_HEADERS, VAULT_NAMESPACE
	if cfg.Namespace != "" {
		client.SetNamespace(cfg.Namespace)
	}
	client.ClearToken() // logins go without one
	c := &conn{cfg: cfg, transport: transport, auth: &authenticator{cfg: cfg.Auth, base: client, now: time.Now}}
	ok := false
	defer func() {
		if !ok {
			transport.CloseIdleConnections()
		}
	}()

	hctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	h, err := client.Sys().HealthWithContext(hctx)
	switch {
	case err != nil:
		return nil, fmt.Errorf("vault at %s: %w", cfg.Addr, err)
	case !h.Initialized:
		return nil, fmt.Errorf("vault at %s is not initialised", cfg.Addr)
	case h.Sealed:
		return nil, fmt.Errorf("vault at %s is sealed", cfg.Addr)
	}
	if err := c.auth.login(ctx); err != nil {
		return nil, err
	}
	c.kv = cfg.KVVersion
	if c.kv == 0 {
		c.kv = c.detectKV(ctx)
	}
	ok = true
	return c, nil
}

// detectKV asks Vault which KV version the engine mount is, as Vault's CLI
// does. Any token may ask about the mounts it can use; when the answer is
// missing (no access, an old Vault), it is Dapr's choice, 2.
func (c *conn) detectKV(ctx context.Context) int {
	s, err := c.call(ctx, http.MethodGet, "sys/internal/ui/mounts/"+c.cfg.EnginePath, nil)
	if err != nil || s == nil {
		return 2
	}
	if typ, _ := s.Data["type"].(string); typ == "generic" {
		return 1
	}
	opts, _ := s.Data["options"].(map[string]any)
	if v, _ := opts["version"].(string); v == "1" || (v == "" && s.Data["type"] == "kv") {
		return 1
	}
	return 2
}

func (s *Store) get() (*conn, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.conn == nil {
		return nil, errors.New("vault secret store is not initialised")
	}
	return s.conn, nil
}

// GetSecret reads the entry NAME; request metadata version_id reads that
// version of a KV v2 entry.
func (s *Store) GetSecret(ctx context.Context, req secretstores.GetRequest) (map[string]string, error) {
	c, err := s.get()
	if err != nil {
		return nil, err
	}
	version, err := c.version(req.Metadata)
	if err != nil {
		return nil, err
	}
	if req.Name == "" || badPath(req.Name) {
		return nil, fmt.Errorf("%w (%q is not a Vault path: empty, \".\" or \"..\" segment)", secretstores.NotFound(req.Name), req.Name)
	}
	return c.read(ctx, req.Name, version)
}

// BulkGetSecret reads every entry under the prefix, each at version_id
// when given (entries without that version are left out).
func (s *Store) BulkGetSecret(ctx context.Context, req secretstores.BulkGetRequest) (map[string]map[string]string, error) {
	c, err := s.get()
	if err != nil {
		return nil, err
	}
	version, err := c.version(req.Metadata)
	if err != nil {
		return nil, err
	}
	names, err := c.list(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make(map[string]map[string]string, len(names))
	for _, name := range names {
		data, err := c.read(ctx, name, version)
		if errors.Is(err, secretstores.ErrNotFound) {
			continue // deleted, or no such version
		}
		if err != nil {
			return nil, err
		}
		out[name] = data
	}
	return out, nil
}

// Features: several keys per secret, except in text mode.
func (s *Store) Features() []secretstores.Feature {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.text {
		return []secretstores.Feature{}
	}
	return []secretstores.Feature{secretstores.FeatureMultipleKeyValuesPerSecret}
}

// Close drops the idle connections to Vault.
func (s *Store) Close() error {
	s.mu.Lock()
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	if c != nil {
		c.transport.CloseIdleConnections()
	}
	return nil
}

// version returns the request's version_id ("" for the latest).
func (c *conn) version(md map[string]string) (string, error) {
	v := strings.TrimSpace(md["version_id"])
	if v == "" || v == "0" {
		return "", nil
	}
	if n, err := strconv.ParseUint(v, 10, 63); err != nil || n == 0 {
		return "", fmt.Errorf("version_id %q is not a version number", v)
	}
	if c.kv == 1 {
		return "", fmt.Errorf("version_id %q: the KV version 1 engine at %q keeps no versions", v, c.cfg.EnginePath)
	}
	return v, nil
}

// path is the API path of an entry (data) or folder (metadata) of the
// engine.
func (c *conn) path(kind, name string) string {
	p := c.cfg.EnginePath + "/"
	if c.kv == 2 {
		p += kind + "/"
	}
	if c.cfg.Prefix != "" {
		p += c.cfg.Prefix + "/"
	}
	return p + name
}

func (c *conn) read(ctx context.Context, name, version string) (map[string]string, error) {
	var params url.Values
	if version != "" {
		params = url.Values{"version": {version}}
	}
	sec, err := c.call(ctx, http.MethodGet, c.path("data", name), params)
	if err != nil {
		return nil, fmt.Errorf("get secret %q: %w", name, err)
	}
	if sec == nil || sec.Data == nil {
		return nil, secretstores.NotFound(name)
	}
	var data any = sec.Data
	if c.kv == 2 {
		// A deleted or destroyed version reads as {"data": null, "metadata": ...}.
		if data = sec.Data["data"]; data == nil {
			return nil, secretstores.NotFound(name)
		}
	}
	if c.cfg.Text {
		return map[string]string{name: text(data)}, nil
	}
	m, ok := data.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("get secret %q: the entry's data is not an object (use vaultValueType text)", name)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = text(v)
	}
	return out, nil
}

// text is a value as a string: strings as they are, anything else as JSON.
func text(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// list returns the entries under folder (relative to the prefix, ending in
// "/" unless empty), recursively, as names relative to the prefix.
func (c *conn) list(ctx context.Context, folder string) ([]string, error) {
	sec, err := c.call(ctx, "LIST", c.path("metadata", folder), nil)
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", c.path("metadata", folder), err)
	}
	if sec == nil {
		return nil, nil // no entries
	}
	keys, _ := sec.Data["keys"].([]any)
	var out []string
	for _, k := range keys {
		key, _ := k.(string)
		switch {
		case key == "":
		case strings.HasSuffix(key, "/"):
			sub, err := c.list(ctx, folder+key)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		default:
			out = append(out, folder+key)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// call makes one request with the current token, and once more with a new
// one when Vault refused it. A 404 is a nil secret, unless its body has
// data (a deleted KV v2 version).
func (c *conn) call(ctx context.Context, method, path string, params url.Values) (*api.Secret, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		client, err := c.auth.current(ctx)
		if err != nil {
			return nil, err
		}
		var s *api.Secret
		if method == "LIST" {
			s, err = client.Logical().ListWithContext(ctx, path)
		} else {
			s, err = client.Logical().ReadWithDataWithContext(ctx, path, params)
		}
		var re *api.ResponseError
		if attempt == 0 && errors.As(err, &re) && re.StatusCode == http.StatusForbidden && c.auth.rejected(ctx, client) {
			continue
		}
		return s, err
	}
}
