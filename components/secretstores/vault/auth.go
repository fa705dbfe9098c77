package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// authenticator holds the client requests are made with (the base client
// with the current token), and gets a new token when the current one is
// about to expire (renewing it while Vault allows, else logging in again)
// or when Vault has refused it.
type authenticator struct {
	cfg  authConfig
	base *api.Client // no token: logins
	now  func() time.Time

	mu     sync.Mutex
	client *api.Client // base with the current token
	token  string
	// refreshAt is when the token is renewed or replaced; zero for a token
	// that does not expire or that Tandem cannot replace (token auth).
	refreshAt time.Time
	// ttl is the lifetime the last login granted; renewable is whether
	// renewing is still worth it (a renewal that grants less than ttl has
	// hit the token's maximum TTL, so the next refresh logs in again).
	ttl       time.Duration
	renewable bool
}

// errAuth marks a failed login, so Init can say what went wrong.
var errAuth = errors.New("vault login failed")

// login gets a token: token auth reads vaultToken or the token file; the
// other methods log in at their auth mount.
func (a *authenticator) login(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.loginLocked(ctx)
}

func (a *authenticator) loginLocked(ctx context.Context) error {
	var body map[string]any
	switch a.cfg.Method {
	case authToken:
		tok := a.cfg.Token
		if a.cfg.TokenPath != "" {
			b, err := os.ReadFile(a.cfg.TokenPath)
			if err != nil {
				return fmt.Errorf("%w: read vaultTokenMountPath: %w", errAuth, err)
			}
			tok = strings.TrimSpace(string(b))
			if tok == "" {
				return fmt.Errorf("%w: the file at vaultTokenMountPath %q is empty", errAuth, a.cfg.TokenPath)
			}
		}
		return a.use(tok)
	case authAppRole:
		body = map[string]any{"role_id": a.cfg.Role}
		secretID := a.cfg.SecretID
		if a.cfg.SecretIDPath != "" {
			b, err := os.ReadFile(a.cfg.SecretIDPath)
			if err != nil {
				return fmt.Errorf("%w: read vaultAppRoleSecretIDPath: %w", errAuth, err)
			}
			secretID = strings.TrimSpace(string(b))
		}
		if secretID != "" {
			body["secret_id"] = secretID
		}
	case authKubernetes:
		b, err := os.ReadFile(a.cfg.JWTPath)
		if err != nil {
			return fmt.Errorf("%w: read the service account token: %w", errAuth, err)
		}
		body = map[string]any{"role": a.cfg.Role, "jwt": strings.TrimSpace(string(b))}
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	s, err := a.base.Logical().WriteWithContext(ctx, "auth/"+a.cfg.Mount+"/login", body)
	if err != nil {
		return fmt.Errorf("%w: %s at auth/%s: %w", errAuth, a.cfg.Method, a.cfg.Mount, err)
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return fmt.Errorf("%w: %s at auth/%s: no token in the answer", errAuth, a.cfg.Method, a.cfg.Mount)
	}
	if err := a.use(s.Auth.ClientToken); err != nil {
		return err
	}
	a.ttl = time.Duration(s.Auth.LeaseDuration) * time.Second
	a.renewable = s.Auth.Renewable
	a.schedule(a.ttl)
	return nil
}

// use makes tok the token of the requests to come.
func (a *authenticator) use(tok string) error {
	if a.client != nil && tok == a.token {
		return nil
	}
	c, err := a.base.Clone()
	if err != nil {
		return err
	}
	c.SetToken(tok)
	a.client, a.token = c, tok
	return nil
}

// schedule sets the next refresh at 80% of a lifetime (none for 0: a token
// that does not expire).
func (a *authenticator) schedule(ttl time.Duration) {
	a.refreshAt = time.Time{}
	if ttl > 0 {
		a.refreshAt = a.now().Add(ttl * 4 / 5)
	}
}

// current returns the client to use, refreshing its token first when its
// time has come. A failed renewal falls back to a login; a failed login
// keeps the old token, which Vault may still accept.
func (a *authenticator) current(ctx context.Context) (*api.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.refreshAt.IsZero() || a.now().Before(a.refreshAt) {
		return a.client, nil
	}
	if a.renewable && a.renewLocked(ctx) == nil {
		return a.client, nil
	}
	if err := a.loginLocked(ctx); err != nil && a.client == nil {
		return nil, err
	}
	return a.client, nil
}

// renewLocked extends the token's lifetime by its original TTL.
func (a *authenticator) renewLocked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	s, err := a.client.Auth().Token().RenewSelfWithContext(ctx, int(a.ttl/time.Second))
	if err != nil {
		return err
	}
	if s == nil || s.Auth == nil {
		return errors.New("renew-self: no auth in the answer")
	}
	granted := time.Duration(s.Auth.LeaseDuration) * time.Second
	a.renewable = s.Auth.Renewable && granted >= a.ttl
	a.schedule(granted)
	return nil
}

// rejected is called when Vault refused the token of the client a request
// was made with (403). It reports whether there is a new token, so the
// request is worth repeating: after a new login, or a token file that now
// holds another token. A static vaultToken cannot be replaced.
func (a *authenticator) rejected(ctx context.Context, used *api.Client) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.client != used {
		return true // another request already got a new one
	}
	if a.cfg.Method == authToken && a.cfg.TokenPath == "" {
		return false
	}
	if err := a.loginLocked(ctx); err != nil {
		return false
	}
	return a.client != used
}
