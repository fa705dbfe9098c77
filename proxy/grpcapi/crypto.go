package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"io"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/components/crypto/encv1"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// chunkRequest is EncryptRequest or DecryptRequest.
type chunkRequest interface {
	GetPayload() *commonv1.StreamPayload
}

// chunkReader reads the payloads of a request stream in order, as daprd:
// sequence numbers from 0 with no gap, and options only in the first
// message. It receives as it is read, on the caller's goroutine.
type chunkReader[T chunkRequest] struct {
	recv    func() (T, error)
	hasOpts func(T) bool
	buf     []byte
	expect  uint64
	err     error
}

func (c *chunkReader[T]) take(m T) error {
	p := m.GetPayload()
	if p == nil {
		return nil
	}
	if p.GetSeq() != c.expect {
		return fmt.Errorf("invalid sequence number received: %d (expected: %d)", p.GetSeq(), c.expect)
	}
	c.expect++
	c.buf = p.GetData()
	return nil
}

func (c *chunkReader[T]) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		m, err := c.recv()
		switch {
		case errors.Is(err, io.EOF):
			c.err = io.EOF
			continue
		case err != nil:
			c.err = fmt.Errorf("error receiving message: %w", err)
			continue
		case c.hasOpts(m):
			c.err = errors.New("options found in non-leading message")
			continue
		}
		if err := c.take(m); err != nil {
			c.err = err
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// sendAll streams out in messages of up to one segment with sequence
// numbers from 0.
func sendAll(ctx context.Context, out io.Reader, send func(*commonv1.StreamPayload) error) error {
	buf := make([]byte, encv1.SegmentSize+encv1.SegmentOverhead)
	var seq uint64
	for {
		if err := ctx.Err(); err != nil {
			return apierr.CryptoOperation(err)
		}
		n, err := io.ReadFull(out, buf)
		if n > 0 {
			if serr := send(&commonv1.StreamPayload{Data: buf[:n], Seq: seq}); serr != nil {
				return apierr.CryptoOperation(fmt.Errorf("error sending message: %w", serr))
			}
			seq++
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return api.StreamError(err)
		}
	}
}

// EncryptAlpha1 encrypts a stream in Dapr's dapr.io/enc/v1 format.
func (a *API) EncryptAlpha1(stream runtimev1.Dapr_EncryptAlpha1Server) error {
	if a.cfg.Crypto == nil {
		return a.UnimplementedDaprServer.EncryptAlpha1(stream)
	}
	first, err := stream.Recv()
	if err != nil {
		return apierr.GRPC(apierr.CryptoOperation(fmt.Errorf("error receiving the first message: %w", err)))
	}
	o := first.GetOptions()
	if o == nil {
		return apierr.GRPC(apierr.BadRequest("first message does not contain the required options"))
	}
	in := &chunkReader[*runtimev1.EncryptRequest]{recv: stream.Recv, hasOpts: func(m *runtimev1.EncryptRequest) bool { return m.GetOptions() != nil }}
	if err := in.take(first); err != nil {
		in.err = err
	}
	out, err := a.cfg.Crypto.Encrypt(stream.Context(), in, api.EncryptOptions{
		Component: o.GetComponentName(), KeyName: o.GetKeyName(), KeyWrapAlgorithm: o.GetKeyWrapAlgorithm(),
		Cipher: o.GetDataEncryptionCipher(), DecryptionKeyName: o.GetDecryptionKeyName(), OmitKeyName: o.GetOmitDecryptionKeyName(),
	})
	if err != nil {
		return apierr.GRPC(err)
	}
	return apierr.GRPC(sendAll(stream.Context(), out, func(p *commonv1.StreamPayload) error {
		return stream.Send(&runtimev1.EncryptResponse{Payload: p})
	}))
}

// DecryptAlpha1 decrypts a stream in Dapr's dapr.io/enc/v1 format.
func (a *API) DecryptAlpha1(stream runtimev1.Dapr_DecryptAlpha1Server) error {
	if a.cfg.Crypto == nil {
		return a.UnimplementedDaprServer.DecryptAlpha1(stream)
	}
	first, err := stream.Recv()
	if err != nil {
		return apierr.GRPC(apierr.CryptoOperation(fmt.Errorf("error receiving the first message: %w", err)))
	}
	o := first.GetOptions()
	if o == nil {
		return apierr.GRPC(apierr.BadRequest("first message does not contain the required options"))
	}
	in := &chunkReader[*runtimev1.DecryptRequest]{recv: stream.Recv, hasOpts: func(m *runtimev1.DecryptRequest) bool { return m.GetOptions() != nil }}
	if err := in.take(first); err != nil {
		in.err = err
	}
	out, err := a.cfg.Crypto.Decrypt(stream.Context(), in, api.DecryptOptions{Component: o.GetComponentName(), KeyName: o.GetKeyName()})
	if err != nil {
		return apierr.GRPC(err)
	}
	return apierr.GRPC(sendAll(stream.Context(), out, func(p *commonv1.StreamPayload) error {
		return stream.Send(&runtimev1.DecryptResponse{Payload: p})
	}))
}

// SubtleGetKeyAlpha1 returns a public key.
func (a *API) SubtleGetKeyAlpha1(ctx context.Context, in *runtimev1.SubtleGetKeyRequest) (*runtimev1.SubtleGetKeyResponse, error) {
	if a.cfg.Crypto == nil {
		return a.UnimplementedDaprServer.SubtleGetKeyAlpha1(ctx, in)
	}
	out, err := a.cfg.Crypto.SubtleGetKey(ctx, in)
	return out, apierr.GRPC(err)
}

// SubtleEncryptAlpha1 encrypts a small message with a named key.
func (a *API) SubtleEncryptAlpha1(ctx context.Context, in *runtimev1.SubtleEncryptRequest) (*runtimev1.SubtleEncryptResponse, error) {
	if a.cfg.Crypto == nil {
		return a.UnimplementedDaprServer.SubtleEncryptAlpha1(ctx, in)
	}
	out, err := a.cfg.Crypto.SubtleEncrypt(ctx, in)
	return out, apierr.GRPC(err)
}

// SubtleDecryptAlpha1 decrypts a small message with a named key.
func (a *API) SubtleDecryptAlpha1(ctx context.Context, in *runtimev1.SubtleDecryptRequest) (*runtimev1.SubtleDecryptResponse, error) {
	if a.cfg.Crypto == nil {
		return a.UnimplementedDaprServer.SubtleDecryptAlpha1(ctx, in)
	}
	out, err := a.cfg.Crypto.SubtleDecrypt(ctx, in)
	return out, apierr.GRPC(err)
}

// SubtleWrapKeyAlpha1 wraps a key with a named key.
func (a *API) SubtleWrapKeyAlpha1(ctx context.Context, in *runtimev1.SubtleWrapKeyRequest) (*runtimev1.SubtleWrapKeyResponse, error) {
	if a.cfg.Crypto == nil {
		return a.UnimplementedDaprServer.SubtleWrapKeyAlpha1(ctx, in)
	}
	out, err := a.cfg.Crypto.SubtleWrapKey(ctx, in)
	return out, apierr.GRPC(err)
}

// SubtleUnwrapKeyAlpha1 unwraps a key with a named key.
func (a *API) SubtleUnwrapKeyAlpha1(ctx context.Context, in *runtimev1.SubtleUnwrapKeyRequest) (*runtimev1.SubtleUnwrapKeyResponse, error) {
	if a.cfg.Crypto == nil {
		return a.UnimplementedDaprServer.SubtleUnwrapKeyAlpha1(ctx, in)
	}
	out, err := a.cfg.Crypto.SubtleUnwrapKey(ctx, in)
	return out, apierr.GRPC(err)
}

// SubtleSignAlpha1 signs a digest with a named key.
func (a *API) SubtleSignAlpha1(ctx context.Context, in *runtimev1.SubtleSignRequest) (*runtimev1.SubtleSignResponse, error) {
	if a.cfg.Crypto == nil {
		return a.UnimplementedDaprServer.SubtleSignAlpha1(ctx, in)
	}
	out, err := a.cfg.Crypto.SubtleSign(ctx, in)
	return out, apierr.GRPC(err)
}

// SubtleVerifyAlpha1 checks a signature with a named key.
func (a *API) SubtleVerifyAlpha1(ctx context.Context, in *runtimev1.SubtleVerifyRequest) (*runtimev1.SubtleVerifyResponse, error) {
	if a.cfg.Crypto == nil {
		return a.UnimplementedDaprServer.SubtleVerifyAlpha1(ctx, in)
	}
	out, err := a.cfg.Crypto.SubtleVerify(ctx, in)
	return out, apierr.GRPC(err)
}
