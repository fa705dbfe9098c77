package signing

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"golang.org/x/text/unicode/norm"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Attestations (Dapr 1.18): the sidecar that ran an activity, or a child
// workflow's, signs what it did for the parent: a payload naming the
// parent instance, its task ID, the activity's name, whether it completed
// or failed, the SHA-256 of its chain, and the SHA-256 of its canonical
// input and output. The parent verifies it against its own record of the
// task before it accepts the result, keeps the signer's chain among its
// external certificates, and stores the attestation with the event.

// specVersion is the canonical encoding's version in the payloads.
const specVersion uint32 = 1

// maxFailureDepth bounds the inner failures the canonical form follows.
const maxFailureDepth = 32

// Result is an activity's or a child workflow's result, as attested.
type Result struct {
	Child    bool   // a child workflow's; else an activity's
	ParentID string // the parent workflow instance
	TaskID   int32  // the parent's task (TaskScheduled or ChildWorkflowInstanceCreated event ID)
	Activity string // the activity's name
	Input    *wrapperspb.StringValue
	Failed   bool
	Output   *wrapperspb.StringValue    // a completed one's
	Failure  *protos.TaskFailureDetails // a failed one's
}

// Attestation is a signed payload and its signer's chain (the chain
// travels with the event and is kept apart from it by the receiver).
type Attestation struct {
	Payload, Signature, Chain []byte
}

func canonical(s string) []byte { return norm.NFC.Bytes([]byte(s)) }

// canonicalOutput is the result's output: the NFC string of a completed
// one; each failure's type, message and stack trace (4-byte length
// prefixed) then 1 and its inner failure, or 0, of a failed one.
func (r Result) canonicalOutput() ([]byte, error) {
	if !r.Failed {
		if r.Output == nil {
			return nil, nil
		}
		return canonical(r.Output.GetValue()), nil
	}
	var buf bytes.Buffer
	str := func(s string) {
		c := canonical(s)
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(c)))
		buf.Write(n[:])
		buf.Write(c)
	}
	fd := r.Failure
	for depth := 0; ; depth++ {
		if depth >= maxFailureDepth {
			return nil, fmt.Errorf("TaskFailureDetails.innerFailure chain exceeds maximum depth %d", maxFailureDepth)
		}
		str(fd.GetErrorType())
		str(fd.GetErrorMessage())
		str(fd.GetStackTrace().GetValue())
		if fd.GetInnerFailure() == nil {
			buf.WriteByte(0)
			return buf.Bytes(), nil
		}
		buf.WriteByte(1)
		fd = fd.GetInnerFailure()
	}
}

// ioDigest is SHA-256(len(in) in || len(out) out), lengths 8 bytes.
func (r Result) ioDigest() ([]byte, error) {
	out, err := r.canonicalOutput()
	if err != nil {
		return nil, err
	}
	var in []byte
	if r.Input != nil {
		in = canonical(r.Input.GetValue())
	}
	h := sha256.New()
	var n [8]byte
	for _, b := range [][]byte{in, out} {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	return h.Sum(nil), nil
}

// payload is the result's deterministic payload, signed by chain.
func (r Result) payload(chainDigest []byte) ([]byte, error) {
	io, err := r.ioDigest()
	if err != nil {
		return nil, err
	}
	var m proto.Message
	if r.Child {
		st := protos.TerminalStatus_TERMINAL_STATUS_COMPLETED
		if r.Failed {
			st = protos.TerminalStatus_TERMINAL_STATUS_FAILED
		}
		m = &protos.ChildCompletionAttestationPayload{ParentInstanceId: r.ParentID, ParentTaskScheduledId: r.TaskID,
			IoDigest: io, SignerCertDigest: chainDigest, TerminalStatus: st, CanonicalSpecVersion: specVersion}
	} else {
		st := protos.ActivityTerminalStatus_ACTIVITY_TERMINAL_STATUS_COMPLETED
		if r.Failed {
			st = protos.ActivityTerminalStatus_ACTIVITY_TERMINAL_STATUS_FAILED
		}
		m = &protos.ActivityCompletionAttestationPayload{ParentInstanceId: r.ParentID, ParentTaskScheduledId: r.TaskID,
			ActivityName: r.Activity, IoDigest: io, SignerCertDigest: chainDigest, TerminalStatus: st, CanonicalSpecVersion: specVersion}
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// Attest signs r with the current SVID.
func (s *Signer) Attest(r Result) (*Attestation, error) {
	if r.ParentID == "" {
		return nil, errors.New("attest: parent instance ID must not be empty")
	}
	if !r.Child && r.Activity == "" {
		return nil, errors.New("attest: activity name must not be empty")
	}
	svid, err := s.id.GetX509SVID()
	if err != nil {
		return nil, fmt.Errorf("attest: get X.509 SVID: %w", err)
	}
	if svid == nil || len(svid.Certificates) == 0 {
		return nil, errors.New("attest: the SVID has no certificates")
	}
	var chain []byte
	for _, c := range svid.Certificates {
		chain = append(chain, c.Raw...)
	}
	p, err := r.payload(Digest(chain))
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	sig, err := signDigest(svid.PrivateKey, Digest(p))
	if err != nil {
		return nil, fmt.Errorf("attest: %w", err)
	}
	return &Attestation{Payload: p, Signature: sig, Chain: chain}, nil
}

// VerifyAttestation checks that a is a valid signature, by a chain the
// trust anchors vouch for now (unless trusted: the caller verified this
// chain before), of exactly the result the parent expects (want: its own
// record of the task, and the result the event claims). It returns the
// digest of a's chain.
func (s *Signer) VerifyAttestation(want Result, a *Attestation, trusted bool) ([]byte, error) {
	return s.verifyAttestation(want, a, time.Now(), trusted)
}

// Validity is the validity period of a DER chain's leaf.
func Validity(chain []byte) (notBefore, notAfter time.Time, err error) {
	c, err := leaf(chain)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	return c.NotBefore, c.NotAfter, nil
}

func (s *Signer) verifyAttestation(want Result, a *Attestation, at time.Time, trusted bool) ([]byte, error) {
	if len(a.Payload) == 0 || len(a.Signature) == 0 {
		return nil, errors.New("attestation payload and signature must not be empty")
	}
	if len(a.Chain) == 0 {
		return nil, errors.New("signer cert must not be empty")
	}
	var (
		version           uint32
		parent            string
		task              int32
		name              string
		io, chainDigest   []byte
		completed, failed bool
	)
	if want.Child {
		p := new(protos.ChildCompletionAttestationPayload)
		if err := proto.Unmarshal(a.Payload, p); err != nil {
			return nil, fmt.Errorf("failed to unmarshal attestation payload: %w", err)
		}
		version, parent, task, io, chainDigest = p.GetCanonicalSpecVersion(), p.GetParentInstanceId(), p.GetParentTaskScheduledId(), p.GetIoDigest(), p.GetSignerCertDigest()
		completed = p.GetTerminalStatus() == protos.TerminalStatus_TERMINAL_STATUS_COMPLETED
		failed = p.GetTerminalStatus() == protos.TerminalStatus_TERMINAL_STATUS_FAILED
	} else {
		p := new(protos.ActivityCompletionAttestationPayload)
		if err := proto.Unmarshal(a.Payload, p); err != nil {
			return nil, fmt.Errorf("failed to unmarshal attestation payload: %w", err)
		}
		version, parent, task, io, chainDigest = p.GetCanonicalSpecVersion(), p.GetParentInstanceId(), p.GetParentTaskScheduledId(), p.GetIoDigest(), p.GetSignerCertDigest()
		name = p.GetActivityName()
		completed = p.GetTerminalStatus() == protos.ActivityTerminalStatus_ACTIVITY_TERMINAL_STATUS_COMPLETED
		failed = p.GetTerminalStatus() == protos.ActivityTerminalStatus_ACTIVITY_TERMINAL_STATUS_FAILED
	}
	switch {
	case version != specVersion:
		return nil, fmt.Errorf("unsupported canonical spec version %d (this build supports %d)", version, specVersion)
	case parent == "":
		return nil, errors.New("payload parent instance ID must not be empty")
	case len(io) != sha256.Size || len(chainDigest) != sha256.Size:
		return nil, fmt.Errorf("payload digests must be %d bytes", sha256.Size)
	case !completed && !failed:
		return nil, errors.New("payload terminalStatus must be set to a known value")
	}
	if !bytes.Equal(Digest(a.Chain), chainDigest) {
		return nil, errors.New("signer cert digest mismatch: companion cert does not match committed digest")
	}
	cert, err := leaf(a.Chain)
	if err != nil {
		return nil, fmt.Errorf("failed to parse signer certificate: %w", err)
	}
	if err := verifyDigest(cert.PublicKey, Digest(a.Payload), a.Signature); err != nil {
		return nil, fmt.Errorf("attestation signature verification failed: %w", err)
	}
	if at.Before(cert.NotBefore) || at.After(cert.NotAfter) {
		return nil, fmt.Errorf("signer cert not valid at %v (valid %v to %v)", at, cert.NotBefore, cert.NotAfter)
	}
	if !trusted {
		if err := s.VerifyTrust(a.Chain, at); err != nil {
			return nil, fmt.Errorf("signer cert chain-of-trust verification failed at %v: %w", at, err)
		}
	}
	switch {
	case parent != want.ParentID:
		return nil, fmt.Errorf("parent instance ID mismatch: attestation claims %q, verifier expected %q", parent, want.ParentID)
	case task != want.TaskID:
		return nil, fmt.Errorf("parent task scheduled ID mismatch: attestation claims %d, verifier expected %d", task, want.TaskID)
	case !want.Child && name != want.Activity:
		return nil, fmt.Errorf("activity name mismatch: attestation claims %q, verifier expected %q", name, want.Activity)
	case failed != want.Failed:
		return nil, fmt.Errorf("attestation terminal status (failed: %t) does not match enclosing event (failed: %t)", failed, want.Failed)
	}
	wantIO, err := want.ioDigest()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(wantIO, io) {
		return nil, errors.New("ioDigest mismatch: claimed input/output does not match committed digest")
	}
	return chainDigest, nil
}
