package workflow

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/workflow/signing"
)

// Attestation of results (Dapr 1.18, with history signing on; see
// package signing): the sidecar that ran an activity, or a child
// workflow's, attaches to the result event it sends an attestation and
// its chain; the parent's sidecar verifies it against the task in its
// history before it takes the event, keeps the chain among the
// instance's external certificates (ext-sigcert-NNNNNN) and stores the
// event without it. A result without a valid attestation ends the parent
// as tampered with.

// AttestationMetrics is told of attestations (*observe.Metrics is one);
// kind is activity or child.
type AttestationMetrics interface {
	WorkflowAttestationGenerated(kind string, ok bool)
	WorkflowAttestationVerified(kind string, ok bool, took time.Duration)
	WorkflowAttestationCertCache(hit bool)
}

// trustedChains are the signers' chains whose chain of trust was
// verified, with their leaves' validity: a chain is verified once while
// valid, not for every result it signs (daprd's cert cache).
type trustedChains struct {
	mu     sync.Mutex
	chains map[string][2]time.Time // by chain digest
}

func (t *trustedChains) has(digest []byte, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.chains[string(digest)]
	return ok && !now.Before(w[0]) && !now.After(w[1])
}

func (t *trustedChains) add(digest, chain []byte) {
	from, to, err := signing.Validity(chain)
	if err != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.chains == nil {
		t.chains = map[string][2]time.Time{}
	}
	t.chains[string(digest)] = [2]time.Time{from, to}
}

func resultKind(r signing.Result) string {
	if r.Child {
		return "child"
	}
	return "activity"
}

// resultOf is what a result event claims; ok is false for other events.
func resultOf(ev *protos.HistoryEvent) (r signing.Result, ok bool) {
	switch b := ev.GetEventType().(type) {
	case *protos.HistoryEvent_TaskCompleted:
		return signing.Result{TaskID: b.TaskCompleted.GetTaskScheduledId(), Output: b.TaskCompleted.GetResult()}, true
	case *protos.HistoryEvent_TaskFailed:
		return signing.Result{TaskID: b.TaskFailed.GetTaskScheduledId(), Failed: true, Failure: b.TaskFailed.GetFailureDetails()}, true
	case *protos.HistoryEvent_ChildWorkflowInstanceCompleted:
		c := b.ChildWorkflowInstanceCompleted
		return signing.Result{Child: true, TaskID: c.GetTaskScheduledId(), Output: c.GetResult()}, true
	case *protos.HistoryEvent_ChildWorkflowInstanceFailed:
		c := b.ChildWorkflowInstanceFailed
		return signing.Result{Child: true, TaskID: c.GetTaskScheduledId(), Failed: true, Failure: c.GetFailureDetails()}, true
	}
	return signing.Result{}, false
}

// attestationOf is the attestation a result event carries, nil if none.
func attestationOf(ev *protos.HistoryEvent) *signing.Attestation {
	var payload, sig, chain []byte
	switch b := ev.GetEventType().(type) {
	case *protos.HistoryEvent_TaskCompleted:
		a := b.TaskCompleted.GetAttestation()
		if a == nil {
			return nil
		}
		payload, sig, chain = a.GetPayload(), a.GetSignature(), b.TaskCompleted.GetSignerCertificate()
	case *protos.HistoryEvent_TaskFailed:
		a := b.TaskFailed.GetAttestation()
		if a == nil {
			return nil
		}
		payload, sig, chain = a.GetPayload(), a.GetSignature(), b.TaskFailed.GetSignerCertificate()
	case *protos.HistoryEvent_ChildWorkflowInstanceCompleted:
		a := b.ChildWorkflowInstanceCompleted.GetAttestation()
		if a == nil {
			return nil
		}
		payload, sig, chain = a.GetPayload(), a.GetSignature(), b.ChildWorkflowInstanceCompleted.GetSignerCertificate()
	case *protos.HistoryEvent_ChildWorkflowInstanceFailed:
		a := b.ChildWorkflowInstanceFailed.GetAttestation()
		if a == nil {
			return nil
		}
		payload, sig, chain = a.GetPayload(), a.GetSignature(), b.ChildWorkflowInstanceFailed.GetSignerCertificate()
	default:
		return nil
	}
	return &signing.Attestation{Payload: payload, Signature: sig, Chain: chain}
}

// setAttestation puts a (with its chain, nil to strip it) on a result event.
func setAttestation(ev *protos.HistoryEvent, a *signing.Attestation, chain []byte) {
	switch b := ev.GetEventType().(type) {
	case *protos.HistoryEvent_TaskCompleted:
		if a != nil {
			b.TaskCompleted.Attestation = &protos.ActivityCompletionAttestation{Payload: a.Payload, Signature: a.Signature}
		}
		b.TaskCompleted.SignerCertificate = chain
	case *protos.HistoryEvent_TaskFailed:
		if a != nil {
			b.TaskFailed.Attestation = &protos.ActivityCompletionAttestation{Payload: a.Payload, Signature: a.Signature}
		}
		b.TaskFailed.SignerCertificate = chain
	case *protos.HistoryEvent_ChildWorkflowInstanceCompleted:
		if a != nil {
			b.ChildWorkflowInstanceCompleted.Attestation = &protos.ChildCompletionAttestation{Payload: a.Payload, Signature: a.Signature}
		}
		b.ChildWorkflowInstanceCompleted.SignerCertificate = chain
	case *protos.HistoryEvent_ChildWorkflowInstanceFailed:
		if a != nil {
			b.ChildWorkflowInstanceFailed.Attestation = &protos.ChildCompletionAttestation{Payload: a.Payload, Signature: a.Signature}
		}
		b.ChildWorkflowInstanceFailed.SignerCertificate = chain
	}
}

// attest attaches an attestation to ev, a result for task of instance
// parentID (activity: the activity's name, "" for a child workflow; input
// its input), when signing is on.
func (e *Engine) attest(ev *protos.HistoryEvent, parentID, activity string, input *wrapperspb.StringValue) error {
	if e.cfg.Signer == nil {
		return nil
	}
	r, ok := resultOf(ev)
	if !ok {
		return fmt.Errorf("attest: %T is not a result event", ev.GetEventType())
	}
	r.ParentID, r.Activity, r.Input = parentID, activity, input
	a, err := e.cfg.Signer.Attest(r)
	if m := e.cfg.AttestationMetrics; m != nil {
		m.WorkflowAttestationGenerated(resultKind(r), err == nil)
	}
	if err != nil {
		return err
	}
	setAttestation(ev, a, a.Chain)
	return nil
}

// checkResult verifies the attestation of ev when it is a result for
// inst and signing is on; it then keeps the signer's chain and strips it
// from ev. An error means the result is not to be trusted.
func (e *Engine) checkResult(inst *instance, ev *protos.HistoryEvent) error {
	if e.cfg.Signer == nil {
		return nil
	}
	want, ok := resultOf(ev)
	if !ok {
		return nil
	}
	start := time.Now()
	err := e.checkAttestation(inst, ev, want)
	if m := e.cfg.AttestationMetrics; m != nil {
		m.WorkflowAttestationVerified(resultKind(want), err == nil, time.Since(start))
	}
	return err
}

func (e *Engine) checkAttestation(inst *instance, ev *protos.HistoryEvent, want signing.Result) error {
	what := resultKind(want)
	want.ParentID = inst.id
	var task *protos.HistoryEvent
	for _, h := range inst.history {
		if h.GetEventId() == want.TaskID && (want.Child && h.GetChildWorkflowInstanceCreated() != nil || !want.Child && h.GetTaskScheduled() != nil) {
			task = h
			break
		}
	}
	if task == nil {
		return fmt.Errorf("%s completion references unknown task scheduled id %d", what, want.TaskID)
	}
	if want.Child {
		want.Input = task.GetChildWorkflowInstanceCreated().GetInput()
	} else {
		want.Activity, want.Input = task.GetTaskScheduled().GetName(), task.GetTaskScheduled().GetInput()
	}
	a := attestationOf(ev)
	if a == nil {
		kind := "completion"
		if want.Failed {
			kind = "failure"
		}
		return fmt.Errorf("%s %s missing required attestation for task %d", what, kind, want.TaskID)
	}
	chainDigest := signing.Digest(a.Chain)
	trusted := e.trusted.has(chainDigest, time.Now())
	if m := e.cfg.AttestationMetrics; m != nil {
		m.WorkflowAttestationCertCache(trusted)
	}
	digest, err := e.cfg.Signer.VerifyAttestation(want, a, trusted)
	if err != nil {
		return fmt.Errorf("%s attestation verification failed for task %d: %w", what, want.TaskID, err)
	}
	if !trusted {
		e.trusted.add(chainDigest, a.Chain)
	}
	inst.sig.keepExternal(digest, a.Chain)
	setAttestation(ev, nil, nil)
	return nil
}

// keepExternal adds a signer's chain to the external certificates, once.
func (s *signedHistory) keepExternal(digest, chain []byte) {
	for _, c := range s.extCerts {
		if bytes.Equal(c.GetDigest(), digest) {
			return
		}
	}
	s.extCerts = append(s.extCerts, &protos.ExternalSigningCertificate{Digest: digest, Certificate: chain})
}
