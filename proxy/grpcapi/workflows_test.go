package grpcapi

import (
	"context"
	"strings"
	"testing"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/workflow"
)

// TestWorkflowErrors: daprd's checks and codes on the Dapr-service
// workflow RPCs, before and without the actor runtime.
func TestWorkflowErrors(t *testing.T) {
	ctx := context.Background()
	noEngine := start(t, Config{})
	engine := start(t, Config{Workflows: workflow.New(workflow.Config{AppID: "app"})})
	tests := []struct {
		name   string
		call   func() error
		code   codes.Code
		inText string
	}{
		{"no engine", func() error {
			_, err := noEngine.StartWorkflowBeta1(ctx, &runtimev1.StartWorkflowRequest{WorkflowName: "w"})
			return err
		}, codes.Internal, "actor runtime is not configured"},
		{"bad instance ID", func() error {
			_, err := engine.StartWorkflowBeta1(ctx, &runtimev1.StartWorkflowRequest{InstanceId: "a/b", WorkflowName: "w"})
			return err
		}, codes.InvalidArgument, "workflow instance ID 'a/b' is invalid"},
		{"instance ID too long", func() error {
			_, err := engine.StartWorkflowBeta1(ctx, &runtimev1.StartWorkflowRequest{InstanceId: strings.Repeat("a", 65), WorkflowName: "w"})
			return err
		}, codes.InvalidArgument, "exceeds the max length of 64"},
		{"no workflow name", func() error {
			_, err := engine.StartWorkflowBeta1(ctx, &runtimev1.StartWorkflowRequest{InstanceId: "i"})
			return err
		}, codes.InvalidArgument, "workflow name is not configured"},
		{"bad start time", func() error {
			_, err := engine.StartWorkflowBeta1(ctx, &runtimev1.StartWorkflowRequest{WorkflowName: "w", Options: map[string]string{"dapr.workflow.start_time": "soon"}})
			return err
		}, codes.Internal, "RFC3339"},
		{"no instance ID", func() error {
			_, err := engine.GetWorkflowBeta1(ctx, &runtimev1.GetWorkflowRequest{})
			return err
		}, codes.InvalidArgument, "no instance ID was provided"},
		{"no event name", func() error {
			_, err := engine.RaiseEventWorkflowBeta1(ctx, &runtimev1.RaiseEventWorkflowRequest{InstanceId: "i"})
			return err
		}, codes.InvalidArgument, "missing workflow event name"},
		{"engine without actors", func() error {
			_, err := engine.PauseWorkflowBeta1(ctx, &runtimev1.PauseWorkflowRequest{InstanceId: "i"})
			return err
		}, codes.Internal, "actor runtime is not configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != tt.code || !strings.Contains(status.Convert(err).Message(), tt.inText) {
				t.Fatalf("error = %v, want %s containing %q", err, tt.code, tt.inText)
			}
		})
	}
}
