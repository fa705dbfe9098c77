package workflow

import (
	"fmt"
	"strings"

	"github.com/dapr/durabletask-go/api/protos"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func newID() string { return uuid.NewString() }

func wrap(s string) *wrapperspb.StringValue { return wrapperspb.String(s) }

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("marshal %T: %v", m, err)) // only for our own well-formed messages
	}
	if b == nil {
		b = []byte{}
	}
	return b
}

func unmarshal(b []byte, m proto.Message) error { return proto.Unmarshal(b, m) }

// stamp gives a new history event the time now and no event ID.
func stamp(ev *protos.HistoryEvent) *protos.HistoryEvent {
	ev.EventId, ev.Timestamp = -1, timestamppb.Now()
	return ev
}

func containsText(err, s error) bool { return strings.Contains(err.Error(), s.Error()) }

// Properties is an instance's state as daprd's workflow API reports it
// (GetWorkflowResponse.properties): custom status, input, output and the
// failure, each under its dapr.workflow.* key when present.
func Properties(st *protos.WorkflowState) map[string]string {
	props := map[string]string{}
	if st.GetCustomStatus() != nil {
		props["dapr.workflow.custom_status"] = st.GetCustomStatus().GetValue()
	}
	if st.GetInput() != nil {
		props["dapr.workflow.input"] = st.GetInput().GetValue()
	}
	if st.GetOutput() != nil {
		props["dapr.workflow.output"] = st.GetOutput().GetValue()
	}
	if fd := st.GetFailureDetails(); fd != nil {
		props["dapr.workflow.failure.error_type"] = fd.GetErrorType()
		props["dapr.workflow.failure.error_message"] = fd.GetErrorMessage()
		if fd.GetStackTrace() != nil {
			props["dapr.workflow.failure.stack_trace"] = fd.GetStackTrace().GetValue()
		}
	}
	return props
}
