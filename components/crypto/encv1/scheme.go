// Package encv1 is Dapr's streaming encryption format "dapr.io/enc/v1"
// (github.com/dapr/kit/schemes/enc/v1), written for Tandem and
// byte-compatible with daprd's: a document encrypted by one decrypts with
// the other.
//
// Layout: a three-line header, then the payload.
//
//	dapr.io/enc/v1\n
//	{"k":"<key name>","kw":<wrap alg id>,"wfk":"<b64 wrapped file key>","cph":<cipher id>,"np":"<b64 7-byte nonce prefix>"}\n
//	<b64 HMAC-SHA-256 of the two lines above, keyed by HKDF(file key, info "header")>\n
//	segment 0 || segment 1 || ...
//
// The plaintext is cut into 64 KiB segments (the last may be shorter; an
// empty plaintext has none), each sealed with AES-256-GCM or
// ChaCha20-Poly1305 under HKDF(file key, salt nonce prefix, info "payload")
// with the nonce prefix || big-endian segment number || last-segment flag.
// The 32-byte file key is random per document and wrapped by the caller's
// key store (A256KW or RSA-OAEP-256).
//
// Encrypt and Decrypt return readers that work as they are read: nothing
// is buffered beyond one segment, and a decrypted segment is released only
// after its tag verified.
package encv1

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

const (
	// SchemeName is the first line of every document.
	SchemeName = "dapr.io/enc/v1"
	// SegmentSize is the plaintext size of every segment but the last.
	SegmentSize = 64 << 10
	// SegmentOverhead is the tag each sealed segment carries.
	SegmentOverhead = 16
	// NoncePrefixLength is the length of the manifest's nonce prefix.
	NoncePrefixLength = 7
	fileKeyLength     = 32
)

// Key wrapping algorithms, by name and by the number the manifest carries.
const (
	A256KW       = "A256KW"
	A128CBCNoPad = "A128CBC-NOPAD"
	A192CBCNoPad = "A192CBC-NOPAD"
	A256CBCNoPad = "A256CBC-NOPAD"
	RSAOAEP256   = "RSA-OAEP-256"
)

var algorithmIDs = map[string]int{A256KW: 1, A128CBCNoPad: 2, A192CBCNoPad: 3, A256CBCNoPad: 4, RSAOAEP256: 5}

// Ciphers of the payload, by name and number.
const (
	AESGCM           = "AES-GCM"
	ChaCha20Poly1305 = "CHACHA20-POLY1305"
)

var cipherIDs = map[string]int{AESGCM: 1, ChaCha20Poly1305: 2}

// Errors a caller may branch on; their texts are daprd's.
var (
	ErrDecryptionKeyMissing = errors.New("document's manifest does not contain a key name, and no key name was provided")
	ErrDecryptionSignature  = errors.New("failed to validate the document's signature")
	ErrDecryptionFailed     = errors.New("failed to decrypt segment")
)

// WrapFunc wraps the file key with the key named keyName using algorithm
// (one of the constants above).
type WrapFunc func(fileKey []byte, algorithm, keyName string) ([]byte, error)

// UnwrapFunc unwraps a wrapped file key.
type UnwrapFunc func(wrapped []byte, algorithm, keyName string) ([]byte, error)

// EncryptOptions are Encrypt's inputs, named as daprd's request options.
type EncryptOptions struct {
	Wrap WrapFunc
	// KeyName is the key that wraps the file key.
	KeyName string
	// Algorithm wraps the file key: A256KW, A128CBC-NOPAD, A192CBC-NOPAD,
	// A256CBC-NOPAD, RSA-OAEP-256, or the aliases AES and RSA (any case).
	Algorithm string
	// DecryptionKeyName goes into the manifest instead of KeyName.
	DecryptionKeyName string
	// OmitKeyName leaves the key name out of the manifest.
	OmitKeyName bool
	// Cipher is AES-GCM (default) or CHACHA20-POLY1305.
	Cipher string
}

// DecryptOptions are Decrypt's inputs.
type DecryptOptions struct {
	Unwrap UnwrapFunc
	// KeyName overrides the manifest's key name.
	KeyName string
}

// NormalizeAlgorithm resolves the aliases AES (A256KW) and RSA
// (RSA-OAEP-256) and checks the name, case-insensitively.
func NormalizeAlgorithm(alg string) (string, error) {
	a := strings.ToUpper(alg)
	switch a {
	case "AES":
		return A256KW, nil
	case "RSA":
		return RSAOAEP256, nil
	}
	if _, ok := algorithmIDs[a]; !ok {
		return "", fmt.Errorf("algorithm %s is not supported", alg)
	}
	return a, nil
}

func normalizeCipher(c string) (string, error) {
	if c == "" {
		return AESGCM, nil
	}
	u := strings.ToUpper(c)
	if _, ok := cipherIDs[u]; !ok {
		return "", fmt.Errorf("cipher %s is not supported", c)
	}
	return u, nil
}

// Manifest is the header's second line. Field order and tags are daprd's,
// so that encoding/json writes the same bytes.
type Manifest struct {
	KeyName     string `json:"k,omitempty"`
	Algorithm   int    `json:"kw"`
	WrappedKey  []byte `json:"wfk"`
	Cipher      int    `json:"cph"`
	NoncePrefix []byte `json:"np"`
}

// AlgorithmName is the name of the manifest's wrapping algorithm.
func (m Manifest) AlgorithmName() string {
	for n, id := range algorithmIDs {
		if id == m.Algorithm {
			return n
		}
	}
	return ""
}

// CipherName is the name of the manifest's payload cipher.
func (m Manifest) CipherName() string {
	for n, id := range cipherIDs {
		if id == m.Cipher {
			return n
		}
	}
	return ""
}

func (m Manifest) validate() error {
	if m.AlgorithmName() == "" {
		return fmt.Errorf("key wrapping algorithm ID %d is not supported", m.Algorithm)
	}
	if len(m.WrappedKey) == 0 {
		return errors.New("wrapped file key is empty")
	}
	if m.CipherName() == "" {
		return fmt.Errorf("cipher ID %d is not supported", m.Cipher)
	}
	if len(m.NoncePrefix) != NoncePrefixLength {
		return errors.New("nonce prefix is invalid")
	}
	return nil
}

// fileKey holds the keys derived from a document's file key.
type fileKey struct {
	headerKey []byte
	aead      cipher.AEAD
	prefix    []byte
}

func deriveFileKey(key, prefix []byte, cipherName string) (*fileKey, error) {
	hk, err := hkdf.Key(sha256.New, key, nil, "header", 32)
	if err != nil {
		return nil, err
	}
	pk, err := hkdf.Key(sha256.New, key, prefix, "payload", 32)
	if err != nil {
		return nil, err
	}
	var aead cipher.AEAD
	switch cipherName {
	case AESGCM:
		block, err := aes.NewCipher(pk)
		if err != nil {
			return nil, err
		}
		aead, err = cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
	case ChaCha20Poly1305:
		aead, err = chacha20poly1305.New(pk)
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported cipher %s", cipherName)
	}
	return &fileKey{headerKey: hk, aead: aead, prefix: prefix}, nil
}

// mac is the HMAC of the header's first two lines (with their newlines).
func (k *fileKey) mac(manifest []byte) []byte {
	h := hmac.New(sha256.New, k.headerKey)
	h.Write([]byte(SchemeName + "\n"))
	h.Write(manifest)
	h.Write([]byte{'\n'})
	return h.Sum(nil)
}

func (k *fileKey) nonce(seq uint32, last bool) []byte {
	n := make([]byte, 12)
	copy(n, k.prefix)
	binary.BigEndian.PutUint32(n[NoncePrefixLength:], seq)
	if last {
		n[11] = 1
	}
	return n
}

// Encrypt returns a reader of in encrypted with a fresh file key, which
// o.Wrap wraps before Encrypt returns (so a wrong key or algorithm fails
// here, not mid-stream).
func Encrypt(in io.Reader, o EncryptOptions) (io.Reader, error) {
	switch {
	case in == nil:
		return nil, errors.New("in stream is nil")
	case o.Wrap == nil:
		return nil, errors.New("option WrapKeyFn is required")
	case o.KeyName == "":
		return nil, errors.New("option KeyName is required")
	case o.Algorithm == "":
		return nil, errors.New("option Algorithm is required")
	}
	alg, err := NormalizeAlgorithm(o.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("option Algorithm is not valid: %w", err)
	}
	ciph, err := normalizeCipher(o.Cipher)
	if err != nil {
		return nil, fmt.Errorf("option Cipher is not valid: %w", err)
	}
	rnd := make([]byte, fileKeyLength+NoncePrefixLength)
	if _, err := io.ReadFull(rand.Reader, rnd); err != nil {
		return nil, fmt.Errorf("failed to generate file key: %w", err)
	}
	fk, err := deriveFileKey(rnd[:fileKeyLength], rnd[fileKeyLength:], ciph)
	if err != nil {
		return nil, err
	}
	wrapped, err := o.Wrap(rnd[:fileKeyLength], alg, o.KeyName)
	if err != nil {
		return nil, fmt.Errorf("failed to wrap the file key: %w", err)
	}
	name := o.DecryptionKeyName
	if o.OmitKeyName {
		name = ""
	} else if name == "" {
		name = o.KeyName
	}
	manifest, err := json.Marshal(Manifest{
		KeyName: name, Algorithm: algorithmIDs[alg], WrappedKey: wrapped,
		Cipher: cipherIDs[ciph], NoncePrefix: rnd[fileKeyLength:],
	})
	if err != nil {
		return nil, fmt.Errorf("failed to encode JSON manifest: %w", err)
	}
	header := make([]byte, 0, len(SchemeName)+len(manifest)+48)
	header = append(header, SchemeName+"\n"...)
	header = append(header, manifest...)
	header = append(header, '\n')
	header = base64.StdEncoding.AppendEncode(header, fk.mac(manifest))
	header = append(header, '\n')
	if len(header) > SegmentSize {
		return nil, errors.New("header is too long")
	}
	return &segments{in: in, size: SegmentSize, out: header, seal: func(dst, src []byte, seq uint32, last bool) ([]byte, error) {
		return fk.aead.Seal(dst, fk.nonce(seq, last), src, nil), nil
	}}, nil
}

// Decrypt reads the header of in, unwraps the file key with o.Unwrap and
// checks the header's MAC before it returns; the payload is decrypted as
// the returned reader is read, and a tampered segment fails that read.
func Decrypt(in io.Reader, o DecryptOptions) (io.Reader, error) {
	if in == nil {
		return nil, errors.New("in stream is nil")
	}
	if o.Unwrap == nil {
		return nil, errors.New("option UnwrapKeyFn is required")
	}
	h, rest, err := ReadHeader(in)
	if err != nil {
		return nil, fmt.Errorf("invalid header: %w", err)
	}
	name := o.KeyName
	if name == "" {
		name = h.Manifest.KeyName
		if name == "" {
			return nil, ErrDecryptionKeyMissing
		}
	}
	key, _ := o.Unwrap(h.Manifest.WrappedKey, h.Manifest.AlgorithmName(), name)
	if len(key) != fileKeyLength {
		// As daprd: go on with a zero key so that the MAC check fails
		// the same way whether the key store refused or the key is wrong.
		key = make([]byte, fileKeyLength)
	}
	fk, err := deriveFileKey(key, h.Manifest.NoncePrefix, h.Manifest.CipherName())
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(fk.mac(h.RawManifest), h.MAC) != 1 {
		return nil, ErrDecryptionSignature
	}
	return &segments{in: rest, size: SegmentSize + SegmentOverhead, seal: func(dst, src []byte, seq uint32, last bool) ([]byte, error) {
		out, err := fk.aead.Open(dst, fk.nonce(seq, last), src, nil)
		if err != nil {
			return nil, ErrDecryptionFailed
		}
		return out, nil
	}}, nil
}

// segments turns in into sealed (or opened) segments of size bytes, as it
// is read. It reads one byte past a segment to know whether it is the
// last.
type segments struct {
	in   io.Reader
	size int
	seal func(dst, src []byte, seq uint32, last bool) ([]byte, error)

	buf  []byte // input: up to size+1 bytes
	n    int
	out  []byte // output not yet read
	obuf []byte
	seq  uint32
	err  error
}

func (s *segments) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		s.next()
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// next processes one segment into s.out, or sets s.err.
func (s *segments) next() {
	if s.buf == nil {
		s.buf = make([]byte, s.size+1)
	}
	m, err := io.ReadFull(s.in, s.buf[s.n:])
	s.n += m
	switch {
	case err == nil: // a full segment and one byte more: not the last
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		err = nil
	default:
		s.err = err
		return
	}
	last := s.n <= s.size
	if s.n == 0 {
		// Only an empty input has no segment at all; after a segment
		// there is always the carried byte.
		s.err = io.EOF
		return
	}
	l := min(s.n, s.size)
	if !last && s.seq == 1<<32-1 {
		s.err = errors.New("input stream is too large")
		return
	}
	out, err := s.seal(s.obuf[:0], s.buf[:l], s.seq, last)
	if err != nil {
		s.err = fmt.Errorf("error processing segment %d: %w", s.seq, err)
		return
	}
	s.obuf = out
	s.out = out
	if last {
		s.err = io.EOF
		return
	}
	s.buf[0] = s.buf[s.size]
	s.n = 1
	s.seq++
}
