package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/jwtsvid"
)

// Dapr's names for the trust bundle Secret and ConfigMap and their keys.
const (
	TrustBundleName = "dapr-trust-bundle"
	KeyRootCert     = "ca.crt"
	KeyIssuerCert   = "issuer.crt"
	KeyIssuerKey    = "issuer.key"
	// The JWT signing key and key set (--jwt-enabled); Dapr names them by
	// the base names of --jwt-key-filename and --jwks-filename.
	KeyJWTKey = jwtsvid.DefaultKeyFilename
	KeyJWKS   = jwtsvid.DefaultJWKSFilename
)

// SecretStore keeps the issuer credentials in a Secret.
type SecretStore struct {
	Client    client.Client
	Namespace string
	// Name of the Secret (TrustBundleName if empty).
	Name string
}

func (s *SecretStore) key() types.NamespacedName {
	name := s.Name
	if name == "" {
		name = TrustBundleName
	}
	return types.NamespacedName{Namespace: s.Namespace, Name: name}
}

// Load reads the bundle; ok is false when the Secret does not exist or
// holds no credentials yet (Dapr's chart creates it empty).
func (s *SecretStore) Load(ctx context.Context) (b *ca.Bundle, ok bool, err error) {
	var sec corev1.Secret
	err = s.Client.Get(ctx, s.key(), &sec)
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("secret %s: %w", s.key(), err)
	}
	root, iss, key := sec.Data[KeyRootCert], sec.Data[KeyIssuerCert], sec.Data[KeyIssuerKey]
	if len(root) == 0 && len(iss) == 0 && len(key) == 0 {
		return nil, false, nil
	}
	b, err = ca.ParseBundle(root, iss, key)
	if err != nil {
		return nil, false, fmt.Errorf("secret %s: %w", s.key(), err)
	}
	return b, true, nil
}

// LoadOrGenerate returns the Secret's bundle, or generates a root and an
// issuer and stores them when there is none. Of several sentries starting
// at once, one's write wins and the others read it.
func (s *SecretStore) LoadOrGenerate(ctx context.Context, opts ca.GenerateOptions) (b *ca.Bundle, generated bool, err error) {
	if b, ok, err := s.Load(ctx); err != nil || ok {
		return b, false, err
	}
	b, err = ca.GenerateBundle(opts)
	if err != nil {
		return nil, false, err
	}
	if err := s.store(ctx, b); err != nil {
		if !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			return nil, false, err
		}
		if b, ok, err := s.Load(ctx); err != nil || ok {
			return b, false, err
		}
		return nil, false, errors.New("the trust bundle secret changed while being written and holds no credentials")
	}
	return b, true, nil
}

// store writes b into the Secret, creating it or filling an empty one.
func (s *SecretStore) store(ctx context.Context, b *ca.Bundle) error {
	data := map[string][]byte{KeyRootCert: b.TrustAnchorsPEM, KeyIssuerCert: b.IssuerChainPEM, KeyIssuerKey: b.IssuerKeyPEM}
	var sec corev1.Secret
	err := s.Client.Get(ctx, s.key(), &sec)
	if apierrors.IsNotFound(err) {
		sec = corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.key().Namespace, Name: s.key().Name}, Data: data}
		return s.Client.Create(ctx, &sec)
	}
	if err != nil {
		return err
	}
	// Kept: other keys (the JWT signing key and key set). The
	// resourceVersion read makes a concurrent write a conflict.
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	maps.Copy(sec.Data, data)
	return s.Client.Update(ctx, &sec)
}

// Digest identifies the Secret's current contents, to notice changes.
func Digest(b *ca.Bundle) []byte {
	return bytes.Join([][]byte{b.TrustAnchorsPEM, b.IssuerChainPEM, b.IssuerKeyPEM}, []byte{0})
}

// JWTKeys are the names of the JWT entries in the Secret.
type JWTKeys struct {
	Key  string // KeyJWTKey if empty
	JWKS string // KeyJWKS if empty
}

func (k JWTKeys) names() (string, string) {
	key, jwks := k.Key, k.JWKS
	if key == "" {
		key = KeyJWTKey
	}
	if jwks == "" {
		jwks = KeyJWKS
	}
	return key, jwks
}

// LoadOrGenerateJWT returns the Secret's JWT signing key and key set
// (checked against each other and keyID, as jwtsvid.Parse), or generates
// them and adds them to the Secret when it has neither. The Secret must
// exist (LoadOrGenerate makes it). Only one of the two is an error: a new
// key would invalidate every token verifiers accept.
func (s *SecretStore) LoadOrGenerateJWT(ctx context.Context, names JWTKeys, keyID string) (b *jwtsvid.Bundle, generated bool, err error) {
	keyName, jwksName := names.names()
	for attempt := 0; ; attempt++ {
		var sec corev1.Secret
		if err := s.Client.Get(ctx, s.key(), &sec); err != nil {
			return nil, false, fmt.Errorf("secret %s: %w", s.key(), err)
		}
		keyPEM, hasKey := sec.Data[keyName]
		jwks, hasJWKS := sec.Data[jwksName]
		switch {
		case hasKey && hasJWKS:
			b, err := jwtsvid.Parse(keyPEM, jwks, keyID)
			if err != nil {
				return nil, false, fmt.Errorf("secret %s, keys %s and %s: %w", s.key(), keyName, jwksName, err)
			}
			return b, false, nil
		case hasKey || hasJWKS:
			return nil, false, fmt.Errorf("secret %s holds only one of %s and %s; restore the other or remove both to generate a new jwt signing key", s.key(), keyName, jwksName)
		}
		b, err := jwtsvid.Generate()
		if err != nil {
			return nil, false, err
		}
		if keyID != "" {
			b.JWKS.Keys[0].KeyID = keyID
			if b.JWKSJSON, err = json.Marshal(b.JWKS); err != nil {
				return nil, false, err
			}
		}
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		sec.Data[keyName], sec.Data[jwksName] = b.KeyPEM, b.JWKSJSON
		err = s.Client.Update(ctx, &sec)
		if err == nil {
			return b, true, nil
		}
		if !apierrors.IsConflict(err) || attempt >= 4 {
			return nil, false, fmt.Errorf("secret %s: store the jwt signing key: %w", s.key(), err)
		}
		// Another sentry wrote first: read what it stored.
	}
}
