package workflow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
)

// Reusing an instance ID. As daprd 1.18, an ended instance is re-created
// only once the whole tree of children its last execution created has
// ended too: a descendant still running would deliver its answers into the
// new execution. Each child is asked in its own actor's turn (method
// methodSubtree), which asks its children in turn; a purged child counts
// as ended.

// methodSubtree asks a workflow actor whether it and every child it
// created have ended. Its answer is data, not an error: subtreeEnded,
// subtreeGone, or subtreeRunning followed by the report (the path to the
// descendant that runs).
const methodSubtree = "CheckSubtreeTerminal"

const (
	subtreeEnded byte = iota
	subtreeGone
	subtreeRunning
)

// ErrRecreate is a re-creation of an ended instance refused because part
// of its children's tree has not ended, or could not be asked. Its
// message is daprd's: "cannot recreate workflow with ID '{id}': child
// workflow '{child}': orchestration has not yet completed".
var ErrRecreate = errors.New("cannot recreate workflow with ID")

// notCompleted ends the report of a descendant that runs: durabletask's
// api.ErrNotCompleted, which daprd's callers match as a suffix.
const notCompleted = "orchestration has not yet completed"

// subtreeCheckTimeout bounds the wait for one child's answer, as daprd's.
const subtreeCheckTimeout = 5 * time.Second

// recreateErr is ErrRecreate with its message.
type recreateErr struct{ msg string }

func (r recreateErr) Error() string { return r.msg }
func (r recreateErr) Unwrap() error { return ErrRecreate }

// recreateRefused reports whether an ended instance may not be re-created
// yet: nil if every child it created has ended (or is gone).
func (e *Engine) recreateRefused(ctx context.Context, inst *instance) error {
	if err := e.childrenEnded(ctx, inst); err != nil {
		return recreateErr{msg: fmt.Sprintf("%s '%s': %s", ErrRecreate, inst.id, err)}
	}
	return nil
}

// idTaken reports whether a refused re-creation means the ID is taken (a
// child of the tree runs: AlreadyExists) rather than that the tree could
// not be asked (Unavailable: the caller tries again).
func idTaken(err error) bool {
	return errors.Is(err, ErrRecreate) && strings.HasSuffix(err.Error(), notCompleted)
}

// childrenEnded asks each child inst created (once per ID) whether its
// tree ended: nil if all did, else "child workflow '{id}': {its report}",
// or a failure to ask.
func (e *Engine) childrenEnded(ctx context.Context, inst *instance) error {
	seen := map[string]bool{}
	for _, h := range inst.history {
		c := h.GetChildWorkflowInstanceCreated()
		if c == nil || seen[c.GetInstanceId()] {
			continue
		}
		seen[c.GetInstanceId()] = true
		verdict, report, err := e.askSubtree(ctx, targetOf(h), c.GetInstanceId())
		switch {
		case err != nil:
			return fmt.Errorf("failed to verify child workflow '%s' is in a terminal state: %w", c.GetInstanceId(), err)
		case verdict == subtreeRunning && strings.HasSuffix(report, notCompleted):
			// Wrapped, so that a deep descendant's report keeps its path
			// and still ends in notCompleted for the next level up.
			return fmt.Errorf("child workflow '%s': %s", c.GetInstanceId(), report)
		case verdict == subtreeRunning:
			return fmt.Errorf("failed to verify child workflow '%s' is in a terminal state: %s", c.GetInstanceId(), report)
		}
	}
	return nil
}

// askSubtree calls methodSubtree on instance id of app appID.
func (e *Engine) askSubtree(ctx context.Context, appID, id string) (byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, subtreeCheckTimeout)
	defer cancel()
	out, err := e.call(ctx, e.workflowTypeOf(appID), id, methodSubtree, nil)
	if err != nil {
		return 0, "", lookupErr(err)
	}
	if len(out) == 0 {
		return 0, "", fmt.Errorf("workflow %s answered no verdict", id)
	}
	return out[0], string(out[1:]), nil
}

// subtreeAnswer is inst's answer to methodSubtree.
func (e *Engine) subtreeAnswer(ctx context.Context, inst *instance) []byte {
	switch {
	case !inst.exists || inst.started() == nil:
		return []byte{subtreeGone}
	case inst.completed() == nil:
		return append([]byte{subtreeRunning}, notCompleted...)
	}
	if err := e.childrenEnded(ctx, inst); err != nil {
		// A failure to ask is reported as such: its text does not end in
		// notCompleted, so the ancestor's caller is told Unavailable.
		return append([]byte{subtreeRunning}, err.Error()...)
	}
	return []byte{subtreeEnded}
}

// childTaken reports whether a child's creation failed because its ID is
// taken (another instance runs under it, or the tree of the ended one
// that has it has not ended): then the parent's task fails as daprd's,
// WorkflowInstanceAlreadyExists.
func childTaken(err error) bool {
	return isExists(err) || idTaken(unwrapActorErr(err))
}

// errorTypeAlreadyExists is daprd's failure type of a child whose ID is
// taken.
const errorTypeAlreadyExists = "WorkflowInstanceAlreadyExists"

// childTakenFailure is the failure of a child task whose ID is taken.
func childTakenFailure(err error) *protos.TaskFailureDetails {
	return &protos.TaskFailureDetails{ErrorType: errorTypeAlreadyExists, ErrorMessage: err.Error()}
}
