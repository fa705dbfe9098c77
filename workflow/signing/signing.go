// Package signing signs workflow histories and verifies them, in the
// format of Dapr 1.18's WorkflowHistorySigning feature, so a history one
// sidecar signed verifies on the other and on Dapr's tools.
//
// Each save signs the events it appends as one batch: a HistorySignature
// holds the batch's range [start, start+count), the SHA-256 of the
// batch's stored bytes (each prefixed by its 8-byte big-endian length),
// the SHA-256 of the previous signature's stored bytes (none for the
// first), the index of the signing certificate chain in the instance's
// sigcert list, and the signature of SHA-256(previous digest || events
// digest) by the sidecar's X.509 SVID key. Loading verifies the whole
// chain: links, ranges, digests, signatures, each certificate's chain of
// trust at the time of its batch's last event, and that the certificates
// name the instance's own app.
//
// Only package workflow imports it.
package signing

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/protobuf/proto"
)

// Identity is where the signer reads the sidecar's SVID (the signing key
// and its chain) and the trust anchors that verify other chains.
// identity.Source is one.
type Identity interface {
	x509svid.Source
	x509bundle.Source
}

// Signer signs with the current SVID; nil means signing is off.
type Signer struct{ id Identity }

// New returns a Signer over id.
func New(id Identity) *Signer { return &Signer{id: id} }

// MarshalEvent is the deterministic encoding of a history event that is
// signed and stored.
func MarshalEvent(ev *protos.HistoryEvent) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(ev)
}

// EventsDigest is the SHA-256 over the events, each preceded by its
// length as 8 bytes big-endian.
func EventsDigest(raw [][]byte) []byte {
	h := sha256.New()
	var n [8]byte
	for _, b := range raw {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	return h.Sum(nil)
}

// Digest is the SHA-256 of b (a stored signature or a certificate chain).
func Digest(b []byte) []byte {
	d := sha256.Sum256(b)
	return d[:]
}

// binding is what a propagated chunk's signature covers beside its
// events: the instance and the workflow the chunk claims to be from, so a
// chunk cannot be relabelled as another's. Nil for an instance's own
// history.
type binding struct{ instanceID, workflowName string }

// signedInput is what the key signs: SHA-256(previous || events), followed
// for a chunk by its instance ID and workflow name, each preceded by its
// length as 8 bytes big-endian.
func signedInput(prev, events []byte, b *binding) []byte {
	h := sha256.New()
	h.Write(prev)
	h.Write(events)
	if b != nil {
		var n [8]byte
		for _, s := range []string{b.instanceID, b.workflowName} {
			binary.BigEndian.PutUint64(n[:], uint64(len(s)))
			h.Write(n[:])
			h.Write([]byte(s))
		}
	}
	return h.Sum(nil)
}

// Batch is the result of signing one batch of events.
type Batch struct {
	Signature *protos.HistorySignature
	// Raw is the stored form of Signature, which the next batch links to.
	Raw []byte
	// NewCert is the signing chain when certs did not hold it yet: it is
	// appended to them (Signature.CertificateIndex is its index).
	NewCert *protos.SigningCertificate
}

// Sign signs the events raw, stored from index start on, after the
// signature prevRaw (nil for the first batch); certs are the chains
// stored so far.
func (s *Signer) Sign(raw [][]byte, start uint64, prevRaw []byte, certs []*protos.SigningCertificate) (*Batch, error) {
	return s.sign(raw, start, prevRaw, certs, nil)
}

func (s *Signer) sign(raw [][]byte, start uint64, prevRaw []byte, certs []*protos.SigningCertificate, bind *binding) (*Batch, error) {
	if len(raw) == 0 {
		return nil, errors.New("sign history: no events")
	}
	if prevRaw == nil && start != 0 {
		return nil, fmt.Errorf("sign history: events from index %d have no previous signature to link to", start)
	}
	svid, err := s.id.GetX509SVID()
	if err != nil {
		return nil, fmt.Errorf("sign history: get X.509 SVID: %w", err)
	}
	if svid == nil || len(svid.Certificates) == 0 {
		return nil, errors.New("sign history: the SVID has no certificates")
	}
	var chain []byte
	for _, c := range svid.Certificates {
		chain = append(chain, c.Raw...)
	}
	var prev []byte
	if prevRaw != nil {
		prev = Digest(prevRaw)
	}
	evDigest := EventsDigest(raw)
	sig, err := signDigest(svid.PrivateKey, signedInput(prev, evDigest, bind))
	if err != nil {
		return nil, fmt.Errorf("sign history: %w", err)
	}
	b := &Batch{}
	idx := uint64(len(certs))
	for i, c := range certs {
		if bytes.Equal(c.GetCertificate(), chain) {
			idx = uint64(i)
			break
		}
	}
	if idx == uint64(len(certs)) {
		b.NewCert = &protos.SigningCertificate{Certificate: chain}
	}
	b.Signature = &protos.HistorySignature{
		StartEventIndex: start, EventCount: uint64(len(raw)), PreviousSignatureDigest: prev,
		EventsDigest: evDigest, CertificateIndex: idx, Signature: sig,
	}
	b.Raw, err = proto.MarshalOptions{Deterministic: true}.Marshal(b.Signature)
	if err != nil {
		return nil, fmt.Errorf("sign history: marshal signature: %w", err)
	}
	return b, nil
}

func signDigest(key crypto.Signer, digest []byte) ([]byte, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return ecdsa.SignASN1(rand.Reader, k, digest)
	case ed25519.PrivateKey:
		return ed25519.Sign(k, digest), nil
	case *rsa.PrivateKey:
		return rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest)
	}
	return nil, fmt.Errorf("unsupported SVID key type %T", key)
}

func verifyDigest(pub crypto.PublicKey, digest, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ecdsa signature verification failed")
		}
		return nil
	case ed25519.PublicKey:
		if !ed25519.Verify(k, digest, sig) {
			return errors.New("ed25519 signature verification failed")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, digest, sig)
	}
	return fmt.Errorf("unsupported public key type %T", pub)
}

// leaf parses the first certificate of a DER chain.
func leaf(chain []byte) (*x509.Certificate, error) {
	if len(chain) == 0 {
		return nil, errors.New("certificate chain is empty")
	}
	var first asn1.RawValue
	if _, err := asn1.Unmarshal(chain, &first); err != nil {
		return nil, fmt.Errorf("read leaf certificate: %w", err)
	}
	return x509.ParseCertificate(first.FullBytes)
}

// VerifyChain verifies that the signatures rawSigs (as stored) cover the
// events rawEvents (as stored) exactly, in one unbroken chain, each signed
// by the certificate it names, and that each certificate chains to the
// trust anchors at the time of the last event it signed.
func (s *Signer) VerifyChain(rawSigs [][]byte, certs []*protos.SigningCertificate, rawEvents [][]byte) error {
	_, err := s.verifyChain(rawSigs, certs, rawEvents, nil)
	return err
}

// verifyChain is VerifyChain for signatures bound to bind; it returns the
// indexes of the certificates the signatures name.
func (s *Signer) verifyChain(rawSigs [][]byte, certs []*protos.SigningCertificate, rawEvents [][]byte, bind *binding) (map[uint64]bool, error) {
	if len(rawSigs) == 0 {
		if len(rawEvents) == 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("no signatures but %d events exist", len(rawEvents))
	}
	used := map[uint64]bool{}
	var next uint64
	trusted := map[uint64]struct{ from, to time.Time }{}
	for i, raw := range rawSigs {
		sig := new(protos.HistorySignature)
		if err := proto.Unmarshal(raw, sig); err != nil {
			return nil, fmt.Errorf("signature %d: unmarshal: %w", i, err)
		}
		var prev []byte
		if i > 0 {
			prev = Digest(rawSigs[i-1])
		}
		if !bytes.Equal(sig.GetPreviousSignatureDigest(), prev) {
			if i == 0 {
				return nil, errors.New("signature 0: the root signature links to a previous one")
			}
			return nil, fmt.Errorf("signature %d: previousSignatureDigest does not match digest of signature %d", i, i-1)
		}
		if sig.GetStartEventIndex() != next {
			return nil, fmt.Errorf("signature %d: expected start event index %d, got %d", i, next, sig.GetStartEventIndex())
		}
		at, err := s.verifyOne(sig, certs, rawEvents, bind)
		if err != nil {
			return nil, fmt.Errorf("signature %d: %w", i, err)
		}
		next = sig.GetStartEventIndex() + sig.GetEventCount()
		ci := sig.GetCertificateIndex()
		used[ci] = true
		if w, ok := trusted[ci]; ok && !at.Before(w.from) && !at.After(w.to) {
			continue
		}
		if err := s.VerifyTrust(certs[ci].GetCertificate(), at); err != nil {
			return nil, fmt.Errorf("signature %d: chain-of-trust verification failed for certificate index %d: %w", i, ci, err)
		}
		w, ok := trusted[ci]
		if !ok || at.Before(w.from) {
			w.from = at
		}
		if !ok || at.After(w.to) {
			w.to = at
		}
		trusted[ci] = w
	}
	if next != uint64(len(rawEvents)) {
		return nil, fmt.Errorf("signatures cover events [0, %d) but %d history events exist — signature coverage mismatch, state cannot be verified", next, len(rawEvents))
	}
	return used, nil
}

// verifyOne checks one signature's range, digest and signature; it
// returns the time of the range's last event.
func (s *Signer) verifyOne(sig *protos.HistorySignature, certs []*protos.SigningCertificate, rawEvents [][]byte, bind *binding) (time.Time, error) {
	start, count, total := sig.GetStartEventIndex(), sig.GetEventCount(), uint64(len(rawEvents))
	if count == 0 {
		return time.Time{}, errors.New("signature has zero event count")
	}
	if sig.GetCertificateIndex() >= uint64(len(certs)) {
		return time.Time{}, fmt.Errorf("certificate index %d out of range [0, %d)", sig.GetCertificateIndex(), len(certs))
	}
	if start > total || count > total-start {
		return time.Time{}, fmt.Errorf("signature event range [%d, %d) exceeds events length %d", start, start+count, total)
	}
	chain := certs[sig.GetCertificateIndex()].GetCertificate()
	cert, err := leaf(chain)
	if err != nil {
		return time.Time{}, fmt.Errorf("failed to parse certificate: %w", err)
	}
	batch := rawEvents[start : start+count]
	last := new(protos.HistoryEvent)
	if err := proto.Unmarshal(batch[len(batch)-1], last); err != nil {
		return time.Time{}, fmt.Errorf("unmarshal last event in range: %w", err)
	}
	if last.GetTimestamp() == nil {
		return time.Time{}, fmt.Errorf("last event in range [%d, %d) has no timestamp", start, start+count)
	}
	at := last.GetTimestamp().AsTime()
	if at.Before(cert.NotBefore) || at.After(cert.NotAfter) {
		return time.Time{}, fmt.Errorf("certificate not valid at event time %v (valid %v to %v)", at, cert.NotBefore, cert.NotAfter)
	}
	evDigest := EventsDigest(batch)
	if !bytes.Equal(evDigest, sig.GetEventsDigest()) {
		return time.Time{}, fmt.Errorf("events digest mismatch for range [%d, %d)", start, start+count)
	}
	if err := verifyDigest(cert.PublicKey, signedInput(sig.GetPreviousSignatureDigest(), evDigest, bind), sig.GetSignature()); err != nil {
		return time.Time{}, fmt.Errorf("signature verification failed: %w", err)
	}
	return at, nil
}

// parseChain parses a DER certificate chain and its leaf's SPIFFE ID.
func parseChain(chain []byte) ([]*x509.Certificate, spiffeid.ID, error) {
	certs, err := x509.ParseCertificates(chain)
	if err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("parse certificate chain: %w", err)
	}
	if len(certs) == 0 {
		return nil, spiffeid.ID{}, errors.New("certificate chain is empty")
	}
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("SPIFFE ID of certificate: %w", err)
	}
	return certs, id, nil
}

// VerifyTrust checks that the DER chain's leaf chains to the trust
// anchors of its trust domain at time at.
func (s *Signer) VerifyTrust(chain []byte, at time.Time) error {
	certs, id, err := parseChain(chain)
	if err != nil {
		return err
	}
	b, err := s.id.GetX509BundleForTrustDomain(id.TrustDomain())
	if err != nil {
		return fmt.Errorf("trust bundle for trust domain %q: %w", id.TrustDomain(), err)
	}
	roots := x509.NewCertPool()
	for _, a := range b.X509Authorities() {
		roots.AddCert(a)
	}
	mids := x509.NewCertPool()
	for _, c := range certs[1:] {
		mids.AddCert(c)
	}
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: mids, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

// CheckIdentity checks that the DER chain's leaf has the SPIFFE ID of
// app appID in namespace ns (spiffe://<td>/ns/<ns>/<appID>): a history is
// signed by its own app only.
func CheckIdentity(chain []byte, appID, ns string) error {
	_, id, err := parseChain(chain)
	if err != nil {
		return err
	}
	seg := strings.Split(id.Path(), "/")
	if len(seg) != 4 || seg[1] != "ns" || seg[2] == "" || seg[3] == "" {
		return fmt.Errorf("SPIFFE ID %q does not match expected path format /ns/<namespace>/<app-id>", id)
	}
	if seg[2] != ns {
		return fmt.Errorf("certificate SPIFFE ID namespace %q does not match expected namespace %q", seg[2], ns)
	}
	if seg[3] != appID {
		return fmt.Errorf("certificate SPIFFE ID app %q does not match expected app %q", seg[3], appID)
	}
	return nil
}
