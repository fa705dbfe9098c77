package workflow

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/workflow/signing"
)

// History signing (Dapr's WorkflowHistorySigning feature; see package
// signing): the signatures and the signing certificate chains are stored
// beside the history under Dapr's keys signature-NNNNNN and
// sigcert-NNNNNN, their counts in the metadata. A signed history is
// verified whenever it is loaded; one that fails is tampered with, and a
// running instance is then ended as FAILED by an unsigned marker event
// (loads skip verification after it, so the instance can be read and
// purged).
const (
	keySignaturePrefix  = "signature"
	keySigCertPrefix    = "sigcert"
	keyExtSigCertPrefix = "ext-sigcert"

	// ErrorTypeHistoryTampered is the failure's ErrorType of an instance
	// ended because its stored history failed verification (Dapr's).
	ErrorTypeHistoryTampered = "DAPR_WORKFLOW_HISTORY_TAMPERED"
)

func signatureKey(i int) string  { return fmt.Sprintf("%s-%06d", keySignaturePrefix, i) }
func sigCertKey(i int) string    { return fmt.Sprintf("%s-%06d", keySigCertPrefix, i) }
func extSigCertKey(i int) string { return fmt.Sprintf("%s-%06d", keyExtSigCertPrefix, i) }

// signedHistory is the signing state of an instance.
type signedHistory struct {
	// rawHistory is the history as the store held it at load, which the
	// signatures cover; dropped once verified.
	rawHistory [][]byte
	rawSigs    [][]byte // the signatures as stored
	certs      []*protos.SigningCertificate
	// extCerts are the signers' chains of the attested results the
	// instance accepted (attest.go).
	extCerts []*protos.ExternalSigningCertificate
	// What the store holds, to write only the difference.
	savedSigs, savedCerts, savedExt int
}

// TamperedError is a load's error for a stored history that fails
// verification: it was changed outside the engine.
type TamperedError struct{ err error }

func (e *TamperedError) Error() string { return e.err.Error() }
func (e *TamperedError) Unwrap() error { return e.err }

// loadSignatures reads the signatures and certificates the metadata
// counts; get reads one key (nil if missing).
func (e *Engine) loadSignatures(inst *instance, md *protos.BackendWorkflowStateMetadata, get func(string) ([]byte, error)) error {
	for _, n := range []uint64{md.GetSignatureLength(), md.GetSigningCertificateLength(), md.GetExternalSigningCertificateLength()} {
		if n > maxEntries {
			return &TamperedError{fmt.Errorf("workflow '%s' metadata signing length %d exceeds maximum %d", inst.id, n, maxEntries)}
		}
	}
	read := func(n uint64, key func(int) string, what string) ([][]byte, error) {
		var out [][]byte
		for i := range int(n) {
			b, err := get(key(i))
			if err != nil {
				return nil, err
			}
			if b == nil {
				if tamperMarked(inst) {
					return out, nil
				}
				return nil, &TamperedError{fmt.Errorf("%s state key '%s' declared in metadata but not found in state store — possible tampering", what, key(i))}
			}
			out = append(out, b)
		}
		return out, nil
	}
	s := &inst.sig
	certs, err := read(md.GetSigningCertificateLength(), sigCertKey, "signing certificate")
	if err != nil {
		return err
	}
	for i, b := range certs {
		c := new(protos.SigningCertificate)
		if err := unmarshal(b, c); err != nil {
			return fmt.Errorf("signing certificate %d of workflow %s: %w", i, inst.id, err)
		}
		s.certs = append(s.certs, c)
	}
	ext, err := read(md.GetExternalSigningCertificateLength(), extSigCertKey, "external signing certificate")
	if err != nil {
		return err
	}
	for i, b := range ext {
		c := new(protos.ExternalSigningCertificate)
		if err := unmarshal(b, c); err != nil {
			return fmt.Errorf("external signing certificate %d of workflow %s: %w", i, inst.id, err)
		}
		if !bytes.Equal(signing.Digest(c.GetCertificate()), c.GetDigest()) && !tamperMarked(inst) {
			return &TamperedError{fmt.Errorf("external signing certificate index %d: stored digest does not match sha256 of certificate bytes", i)}
		}
		s.extCerts = append(s.extCerts, c)
	}
	if s.rawSigs, err = read(md.GetSignatureLength(), signatureKey, "signature"); err != nil {
		return err
	}
	s.savedSigs, s.savedCerts, s.savedExt = len(s.rawSigs), len(s.certs), len(s.extCerts)
	return nil
}

// verifyHistory verifies a loaded instance's history against its
// signatures: a TamperedError if they do not match, another error if the
// host's configuration cannot verify them (a signed history on a host
// that does not sign) or would sign an unsigned one from the middle.
func (e *Engine) verifyHistory(inst *instance) error {
	s := &inst.sig
	raw := s.rawHistory
	s.rawHistory = nil
	if tamperMarked(inst) {
		return nil
	}
	if len(s.rawSigs) == 0 {
		if e.cfg.Signer != nil && len(inst.history) > 0 {
			return fmt.Errorf("workflow '%s' has %d unsigned history events but signing is enabled — signing cannot be enabled for workflows that were created without signing; ensure all unsigned workflows complete or are purged before enabling signing", inst.id, len(inst.history))
		}
		return nil
	}
	if e.cfg.Signer == nil {
		return fmt.Errorf("workflow '%s' has signed history but no signer is configured; cannot verify signatures — signing cannot be disabled for workflows that were created with signing enabled", inst.id)
	}
	err := e.cfg.Signer.VerifyChain(s.rawSigs, s.certs, raw)
	for i := 0; err == nil && i < len(s.certs); i++ {
		if ierr := signing.CheckIdentity(s.certs[i].GetCertificate(), e.cfg.AppID, cmp.Or(e.cfg.Namespace, "default")); ierr != nil {
			err = fmt.Errorf("signing certificate %d: %w", i, ierr)
		}
	}
	if err != nil {
		return &TamperedError{fmt.Errorf("workflow history signature verification failed for '%s': %w", inst.id, err)}
	}
	return nil
}

// checkInbox, with signing on, finds results in a running instance's
// inbox for tasks its signed history does not have: only a write to the
// store outside the engine puts them there (results are checked before
// they are added).
func (e *Engine) checkInbox(inst *instance) error {
	if e.cfg.Signer == nil || len(inst.inbox) == 0 || inst.completed() != nil {
		return nil
	}
	tasks, children := map[int32]bool{}, map[int32]bool{}
	for _, h := range inst.history {
		switch {
		case h.GetTaskScheduled() != nil:
			tasks[h.GetEventId()] = true
		case h.GetChildWorkflowInstanceCreated() != nil:
			children[h.GetEventId()] = true
		}
	}
	bad := 0
	for _, ev := range inst.inbox {
		if r, ok := resultOf(ev); ok && (r.Child && !children[r.TaskID] || !r.Child && !tasks[r.TaskID]) {
			bad++
		}
	}
	if bad > 0 {
		return &TamperedError{fmt.Errorf("workflow actor '%s': inbox contained %d events that did not match signed history (state store tampering)", inst.id, bad)}
	}
	return nil
}

// tamperMarked says inst ended by failing verification.
func tamperMarked(inst *instance) bool {
	if len(inst.history) == 0 {
		return false
	}
	c := inst.history[len(inst.history)-1].GetExecutionCompleted()
	return c != nil && c.GetWorkflowStatus() == protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED &&
		c.GetFailureDetails().GetErrorType() == ErrorTypeHistoryTampered
}

// endTampered ends a running instance whose history failed verification
// (loadErr, a TamperedError): an unsigned FAILED marker is appended and
// its reminders are deleted, so nothing works on it any more. Any other
// error, or an instance that has ended, returns loadErr.
func (e *Engine) endTampered(ctx context.Context, inst *instance, loadErr error) (*instance, error) {
	var te *TamperedError
	if inst == nil || !errors.As(loadErr, &te) || inst.completed() != nil {
		return nil, loadErr
	}
	if err := e.failTampered(ctx, inst, loadErr); err != nil {
		return nil, err
	}
	return inst, nil
}

// failTampered ends inst as FAILED because of cause: its stored history,
// or a result sent to it, failed verification.
func (e *Engine) failTampered(ctx context.Context, inst *instance, cause error) error {
	e.log.Warn("workflow history tampering detected, marking the workflow as FAILED", "instance", inst.id, "error", cause)
	timers, activities := inst.pendingTimers(), inst.pendingActivities()
	inst.history = append(inst.history, &protos.HistoryEvent{EventId: -1, Timestamp: timestamppb.Now(),
		EventType: &protos.HistoryEvent_ExecutionCompleted{ExecutionCompleted: &protos.ExecutionCompletedEvent{
			WorkflowStatus: protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED,
			FailureDetails: &protos.TaskFailureDetails{ErrorType: ErrorTypeHistoryTampered, ErrorMessage: cause.Error()},
		}}})
	if err := e.saveOrDrop(ctx, inst); err != nil {
		return err
	}
	if !e.cfg.SchedulerReminders {
		activities = nil
	}
	e.deleteRemindersNow(ctx, inst.id, append(timers, watchdogName), activities)
	return nil
}

// signOps signs the history events a save writes, history[from:], and
// returns their stored form (nil when signing is off: the caller
// marshals them) and the operations that store the new signature and
// certificate. With rewritten, the history was replaced: its old
// signatures and certificates go (whoever replaces it decides on the
// external certificates: a re-created child keeps those of the history
// it received).
func (e *Engine) signOps(inst *instance, from int, rewritten bool) ([][]byte, []actors.StateOp, error) {
	s := &inst.sig
	if rewritten {
		s.rawSigs, s.certs = nil, nil
	}
	var ops []actors.StateOp
	var raw [][]byte
	if e.cfg.Signer != nil && from < len(inst.history) && !tamperMarked(inst) {
		raw = make([][]byte, 0, len(inst.history)-from)
		for _, ev := range inst.history[from:] {
			b, err := signing.MarshalEvent(ev)
			if err != nil {
				return nil, nil, fmt.Errorf("marshal history event: %w", err)
			}
			raw = append(raw, b)
		}
		var prev []byte
		if n := len(s.rawSigs); n > 0 {
			prev = s.rawSigs[n-1]
		}
		b, err := e.cfg.Signer.Sign(raw, uint64(from), prev, s.certs)
		if err != nil {
			return nil, nil, fmt.Errorf("failed to sign new history events: %w", err)
		}
		if b.NewCert != nil {
			s.certs = append(s.certs, b.NewCert)
		}
		s.rawSigs = append(s.rawSigs, b.Raw)
	}
	ops = appendListOps(ops, s.rawSigs, s.savedSigs, rewritten, signatureKey)
	ops = appendListOps(ops, marshalAll(s.certs), s.savedCerts, rewritten, sigCertKey)
	ops = appendListOps(ops, marshalAll(s.extCerts), s.savedExt, rewritten, extSigCertKey)
	return raw, ops, nil
}

func marshalAll[M proto.Message](ms []M) [][]byte {
	out := make([][]byte, len(ms))
	for i, m := range ms {
		out[i] = mustMarshal(m)
	}
	return out
}

// appendListOps stores the entries of list past the saved ones (all of
// them if the list was rewritten: stored entries never change otherwise)
// and deletes the saved ones past its end.
func appendListOps(ops []actors.StateOp, list [][]byte, saved int, rewritten bool, key func(int) string) []actors.StateOp {
	from := min(saved, len(list))
	if rewritten {
		from = 0
	}
	for i := from; i < len(list); i++ {
		op := actors.StateOp{Operation: "upsert", Raw: list[i]}
		op.Request.Key = key(i)
		ops = append(ops, op)
	}
	for i := len(list); i < saved; i++ {
		op := actors.StateOp{Operation: "delete"}
		op.Request.Key = key(i)
		ops = append(ops, op)
	}
	return ops
}

// signedSaved records that a save stored the signing state.
func (s *signedHistory) signedSaved() {
	s.savedSigs, s.savedCerts, s.savedExt = len(s.rawSigs), len(s.certs), len(s.extCerts)
}

// signingMetadata fills the metadata's signing counts.
func (s *signedHistory) signingMetadata(md *protos.BackendWorkflowStateMetadata) *protos.BackendWorkflowStateMetadata {
	md.SignatureLength, md.SigningCertificateLength, md.ExternalSigningCertificateLength = uint64(len(s.rawSigs)), uint64(len(s.certs)), uint64(len(s.extCerts))
	return md
}

// purgeKeys are the signing keys a purge deletes.
func (s *signedHistory) purgeKeys() []string {
	var keys []string
	for i := range s.savedSigs {
		keys = append(keys, signatureKey(i))
	}
	for i := range s.savedCerts {
		keys = append(keys, sigCertKey(i))
	}
	for i := range s.savedExt {
		keys = append(keys, extSigCertKey(i))
	}
	return keys
}
