package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/crypto"
	"github.com/tandemrun/tandem/components/crypto/encv1"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/resiliency"
)

// CryptoConfig is what the cryptography API serves with.
type CryptoConfig struct {
	Registry *components.Registry[crypto.KeyStore]
	// Resiliency, if set, returns the policies in effect: key look-ups
	// run under the component's outbound policy.
	Resiliency func() *resiliency.Set
	Log        *slog.Logger
}

// Crypto is the cryptography API (v1.0-alpha1): the streaming
// encrypt/decrypt in Dapr's dapr.io/enc/v1 format and the "subtle"
// operations. It is safe for concurrent use.
type Crypto struct {
	cfg CryptoConfig
	log *slog.Logger
}

// NewCrypto returns the cryptography API for cfg.
func NewCrypto(cfg CryptoConfig) *Crypto {
	if cfg.Registry == nil {
		cfg.Registry = components.NewRegistry[crypto.KeyStore]()
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Crypto{cfg: cfg, log: log.With("component", "crypto")}
}

// EncryptOptions are the streaming encryption's options, from the HTTP
// headers or the first gRPC message.
type EncryptOptions struct {
	Component         string
	KeyName           string
	KeyWrapAlgorithm  string
	Cipher            string
	DecryptionKeyName string
	OmitKeyName       bool
}

// DecryptOptions are the streaming decryption's options.
type DecryptOptions struct {
	Component string
	// KeyName overrides the key named in the document.
	KeyName string
}

// component validates the component name as daprd does and takes the
// store for the call.
func (c *Crypto) component(name string) (crypto.KeyStore, func(), error) {
	if len(c.cfg.Registry.Names()) == 0 {
		return nil, nil, apierr.CryptoProvidersNotConfigured()
	}
	if name == "" {
		return nil, nil, apierr.BadRequest("missing component name")
	}
	s, release, err := c.cfg.Registry.Acquire(name)
	if err != nil {
		c.log.Debug("crypto component unavailable", "component", name, "error", err)
		return nil, nil, apierr.CryptoProviderNotFound(name)
	}
	return s, release, nil
}

// Check reports whether a crypto component of that name can serve, with
// daprd's error if not.
func (c *Crypto) Check(name string) error {
	_, release, err := c.component(name)
	if err == nil {
		release()
	}
	return err
}

// key finds a key under the component's outbound policy.
func (c *Crypto) key(ctx context.Context, comp string, s crypto.KeyStore, name string) (*crypto.Key, error) {
	op := func(ctx context.Context) (*crypto.Key, error) { return s.Key(ctx, name) }
	if c.cfg.Resiliency != nil {
		if p := c.cfg.Resiliency().ForComponentOutbound(comp, resiliency.Crypto); p != nil {
			return resiliency.Do(ctx, p, op)
		}
	}
	return op(ctx)
}

// releasing closes release once the reader is drained or fails.
type releasing struct {
	r       io.Reader
	release func()
	done    bool
}

func (r *releasing) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !r.done {
		r.done = true
		r.release()
	}
	return n, err
}

// Encrypt returns a reader of in encrypted in Dapr's format; the file key
// is wrapped before it returns, so a bad key or algorithm fails here.
// The reader must be read to its end (or error) to release the component.
func (c *Crypto) Encrypt(ctx context.Context, in io.Reader, o EncryptOptions) (io.Reader, error) {
	if o.KeyName == "" {
		return nil, apierr.BadRequest("missing property 'keyName' in the options message")
	}
	if o.KeyWrapAlgorithm == "" {
		return nil, apierr.BadRequest("missing property 'keyWrapAlgorithm' in the options message")
	}
	s, release, err := c.component(o.Component)
	if err != nil {
		return nil, err
	}
	out, err := encv1.Encrypt(in, encv1.EncryptOptions{
		KeyName: o.KeyName, Algorithm: strings.ToUpper(o.KeyWrapAlgorithm), Cipher: strings.ToUpper(o.Cipher),
		DecryptionKeyName: o.DecryptionKeyName, OmitKeyName: o.OmitKeyName,
		Wrap: func(fileKey []byte, alg, name string) ([]byte, error) {
			k, err := c.key(ctx, o.Component, s, name)
			if err != nil {
				return nil, fmt.Errorf("failed to retrieve the key encryption key: %w", err)
			}
			w, _, err := k.WrapKey(fileKey, alg, nil, nil)
			return w, err
		},
	})
	if err != nil {
		release()
		c.log.Debug("encrypt failed", "component", o.Component, "error", err)
		return nil, apierr.CryptoOperation(err)
	}
	return &releasing{r: out, release: release}, nil
}

// Decrypt returns a reader of the plaintext of the document in; the
// header is checked before it returns.
func (c *Crypto) Decrypt(ctx context.Context, in io.Reader, o DecryptOptions) (io.Reader, error) {
	s, release, err := c.component(o.Component)
	if err != nil {
		return nil, err
	}
	out, err := encv1.Decrypt(in, encv1.DecryptOptions{
		KeyName: o.KeyName,
		Unwrap: func(wrapped []byte, alg, name string) ([]byte, error) {
			k, err := c.key(ctx, o.Component, s, name)
			if err != nil {
				return nil, err
			}
			return k.UnwrapKey(wrapped, alg, nil, nil, nil)
		},
	})
	if err != nil {
		release()
		c.log.Debug("decrypt failed", "component", o.Component, "error", err)
		return nil, apierr.CryptoOperation(err)
	}
	return &releasing{r: out, release: release}, nil
}

// StreamError maps an error met while reading an Encrypt or Decrypt
// reader.
func StreamError(err error) error {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return err
	}
	return apierr.CryptoOperation(err)
}

// withKey runs fn with the named key of the named component.
func (c *Crypto) withKey(ctx context.Context, comp, name string, fn func(*crypto.Key) error) error {
	s, release, err := c.component(comp)
	if err != nil {
		return err
	}
	defer release()
	k, err := c.key(ctx, comp, s, name)
	if err != nil {
		return fmt.Errorf("failed to retrieve the key: %w", err)
	}
	return fn(k)
}

// SubtleGetKey returns a public key as PEM or JSON (a JWK).
func (c *Crypto) SubtleGetKey(ctx context.Context, in *runtimev1.SubtleGetKeyRequest) (*runtimev1.SubtleGetKeyResponse, error) {
	if err := c.Check(in.GetComponentName()); err != nil {
		return &runtimev1.SubtleGetKeyResponse{}, err
	}
	switch in.GetFormat() {
	case runtimev1.SubtleGetKeyRequest_PEM, runtimev1.SubtleGetKeyRequest_JSON:
	default:
		return &runtimev1.SubtleGetKeyResponse{}, apierr.BadRequest("invalid key format")
	}
	var pk []byte
	err := c.withKey(ctx, in.GetComponentName(), in.GetName(), func(k *crypto.Key) (err error) {
		if in.GetFormat() == runtimev1.SubtleGetKeyRequest_PEM {
			pk, err = k.PEM()
		} else {
			pk, err = k.JWK()
		}
		return err
	})
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return &runtimev1.SubtleGetKeyResponse{}, err
		}
		c.log.Debug("get key failed", "component", in.GetComponentName(), "key", in.GetName(), "error", err)
		return &runtimev1.SubtleGetKeyResponse{}, apierr.CryptoGetKey(in.GetName(), err)
	}
	return &runtimev1.SubtleGetKeyResponse{Name: in.GetName(), PublicKey: string(pk)}, nil
}

// subtle runs one subtle operation; a failure is daprd's ERR_CRYPTO with
// a fixed message ("failed to encrypt"...), the cause only logged.
func (c *Crypto) subtle(ctx context.Context, comp, key, what string, fn func(*crypto.Key) error) error {
	err := c.withKey(ctx, comp, key, fn)
	if err == nil {
		return nil
	}
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return err
	}
	c.log.Debug("crypto operation failed", "component", comp, "key", key, "operation", what, "error", err)
	return apierr.CryptoOperation("failed to " + what)
}

// SubtleEncrypt encrypts a small message with a named key.
func (c *Crypto) SubtleEncrypt(ctx context.Context, in *runtimev1.SubtleEncryptRequest) (*runtimev1.SubtleEncryptResponse, error) {
	out := &runtimev1.SubtleEncryptResponse{}
	err := c.subtle(ctx, in.GetComponentName(), in.GetKeyName(), "encrypt", func(k *crypto.Key) (err error) {
		out.Ciphertext, out.Tag, err = k.Encrypt(in.GetPlaintext(), in.GetAlgorithm(), in.GetNonce(), in.GetAssociatedData())
		return err
	})
	if err != nil {
		return &runtimev1.SubtleEncryptResponse{}, err
	}
	return out, nil
}

// SubtleDecrypt decrypts a small message with a named key.
func (c *Crypto) SubtleDecrypt(ctx context.Context, in *runtimev1.SubtleDecryptRequest) (*runtimev1.SubtleDecryptResponse, error) {
	out := &runtimev1.SubtleDecryptResponse{}
	err := c.subtle(ctx, in.GetComponentName(), in.GetKeyName(), "decrypt", func(k *crypto.Key) (err error) {
		out.Plaintext, err = k.Decrypt(in.GetCiphertext(), in.GetAlgorithm(), in.GetNonce(), in.GetTag(), in.GetAssociatedData())
		return err
	})
	if err != nil {
		return &runtimev1.SubtleDecryptResponse{}, err
	}
	return out, nil
}

// SubtleWrapKey wraps a key (given as daprd's ParseKey reads it) with a
// named key.
func (c *Crypto) SubtleWrapKey(ctx context.Context, in *runtimev1.SubtleWrapKeyRequest) (*runtimev1.SubtleWrapKeyResponse, error) {
	if err := c.Check(in.GetComponentName()); err != nil {
		return &runtimev1.SubtleWrapKeyResponse{}, err
	}
	pk, err := crypto.ParseKey(in.GetPlaintextKey(), "")
	if err != nil {
		return &runtimev1.SubtleWrapKeyResponse{}, apierr.CryptoOperation(fmt.Errorf("failed to parse plaintext key: %w", err))
	}
	plain, err := pk.Serialize()
	if err != nil {
		return &runtimev1.SubtleWrapKeyResponse{}, apierr.CryptoOperation(fmt.Errorf("cannot serialize key: %w", err))
	}
	out := &runtimev1.SubtleWrapKeyResponse{}
	err = c.subtle(ctx, in.GetComponentName(), in.GetKeyName(), "wrap key", func(k *crypto.Key) (err error) {
		out.WrappedKey, out.Tag, err = k.WrapKey(plain, in.GetAlgorithm(), in.GetNonce(), in.GetAssociatedData())
		return err
	})
	if err != nil {
		return &runtimev1.SubtleWrapKeyResponse{}, err
	}
	return out, nil
}

// SubtleUnwrapKey unwraps a key wrapped with a named key.
func (c *Crypto) SubtleUnwrapKey(ctx context.Context, in *runtimev1.SubtleUnwrapKeyRequest) (*runtimev1.SubtleUnwrapKeyResponse, error) {
	out := &runtimev1.SubtleUnwrapKeyResponse{}
	err := c.subtle(ctx, in.GetComponentName(), in.GetKeyName(), "unwrap key", func(k *crypto.Key) (err error) {
		out.PlaintextKey, err = k.UnwrapKey(in.GetWrappedKey(), in.GetAlgorithm(), in.GetNonce(), in.GetTag(), in.GetAssociatedData())
		return err
	})
	if err != nil {
		return &runtimev1.SubtleUnwrapKeyResponse{}, err
	}
	return out, nil
}

// SubtleSign signs a digest with a named private key.
func (c *Crypto) SubtleSign(ctx context.Context, in *runtimev1.SubtleSignRequest) (*runtimev1.SubtleSignResponse, error) {
	out := &runtimev1.SubtleSignResponse{}
	err := c.subtle(ctx, in.GetComponentName(), in.GetKeyName(), "sign", func(k *crypto.Key) (err error) {
		out.Signature, err = k.Sign(in.GetDigest(), in.GetAlgorithm())
		return err
	})
	if err != nil {
		return &runtimev1.SubtleSignResponse{}, err
	}
	return out, nil
}

// SubtleVerify checks a signature with a named key.
func (c *Crypto) SubtleVerify(ctx context.Context, in *runtimev1.SubtleVerifyRequest) (*runtimev1.SubtleVerifyResponse, error) {
	out := &runtimev1.SubtleVerifyResponse{}
	err := c.subtle(ctx, in.GetComponentName(), in.GetKeyName(), "verify signature", func(k *crypto.Key) (err error) {
		out.Valid, err = k.Verify(in.GetDigest(), in.GetSignature(), in.GetAlgorithm())
		return err
	})
	if err != nil {
		return &runtimev1.SubtleVerifyResponse{}, err
	}
	return out, nil
}
