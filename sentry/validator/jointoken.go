package validator

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// ErrBadToken is returned when a request's token matches no configured token.
var ErrBadToken = errors.New("join token is missing or not valid")

// Token is one configured join token.
type Token struct {
	// Secret is the token value the request must carry.
	Secret string
	// AppIDs are the app IDs the token may obtain; empty or containing "*"
	// means any.
	AppIDs []string
}

func (t Token) allows(appID string) bool {
	return len(t.AppIDs) == 0 || slices.Contains(t.AppIDs, "*") || slices.Contains(t.AppIDs, appID)
}

// JoinToken admits requests whose token equals a configured one.
type JoinToken struct {
	tokens []hashedToken
}

type hashedToken struct {
	sum [sha256.Size]byte
	tok Token
}

var _ Validator = (*JoinToken)(nil)

// NewJoinToken returns a validator for tokens; there must be at least one
// and none may be empty.
func NewJoinToken(tokens []Token) (*JoinToken, error) {
	if len(tokens) == 0 {
		return nil, errors.New("join token validator: no tokens configured")
	}
	v := &JoinToken{}
	for i, t := range tokens {
		if t.Secret == "" {
			return nil, fmt.Errorf("join token validator: token %d is empty", i+1)
		}
		v.tokens = append(v.tokens, hashedToken{sum: sha256.Sum256([]byte(t.Secret)), tok: t})
	}
	return v, nil
}

// Validate implements Validator. The token is compared against every
// configured token in constant time (hashes, so lengths do not leak).
func (v *JoinToken) Validate(_ context.Context, req *sentryv1.SignCertificateRequest) (spiffeid.ID, error) {
	id, err := RequestedID(req)
	if err != nil {
		return spiffeid.ID{}, err
	}
	// daprd sends the whole token file, trailing newline included.
	sum := sha256.Sum256([]byte(strings.TrimSpace(req.GetToken())))
	var match *Token
	for i := range v.tokens {
		if subtle.ConstantTimeCompare(sum[:], v.tokens[i].sum[:]) == 1 && match == nil {
			match = &v.tokens[i].tok
		}
	}
	if match == nil || req.GetToken() == "" {
		return spiffeid.ID{}, ErrBadToken
	}
	if !match.allows(req.GetId()) {
		return spiffeid.ID{}, fmt.Errorf("join token is not allowed to obtain app id %q", req.GetId())
	}
	return id, nil
}

// ParseTokens reads one token per line: "TOKEN" (any app) or
// "TOKEN app1,app2" (only those app IDs; "*" means any). Blank lines and
// lines starting with # are skipped.
func ParseTokens(r io.Reader) ([]Token, error) {
	var tokens []Token
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) > 2 {
			return nil, fmt.Errorf("line %d: want \"TOKEN\" or \"TOKEN app1,app2\", got %d fields", n, len(fields))
		}
		t := Token{Secret: fields[0]}
		if len(fields) == 2 {
			for _, app := range strings.Split(fields[1], ",") {
				if app = strings.TrimSpace(app); app != "" {
					t.AppIDs = append(t.AppIDs, app)
				}
			}
			if len(t.AppIDs) == 0 {
				return nil, fmt.Errorf("line %d: empty app id list", n)
			}
		}
		tokens = append(tokens, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	return tokens, nil
}

// LoadJoinTokenFile reads tokens from path (see ParseTokens).
func LoadJoinTokenFile(path string) (*JoinToken, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("join token file: %w", err)
	}
	defer f.Close()
	tokens, err := ParseTokens(f)
	if err != nil {
		return nil, fmt.Errorf("join token file %s: %w", path, err)
	}
	v, err := NewJoinToken(tokens)
	if err != nil {
		return nil, fmt.Errorf("join token file %s: %w (add one token per line)", path, err)
	}
	return v, nil
}
