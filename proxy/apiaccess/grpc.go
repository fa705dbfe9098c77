package apiaccess

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// runtimePrefix starts every method the rules apply to; other services
// (gRPC proxying by dapr-app-id, health, reflection) are never checked.
const runtimePrefix = "/dapr.proto.runtime."

// grpcGroups is daprd's table (pkg/api/grpc/endpoints.go) from
// "<name>.<version>" to the methods of dapr.proto.runtime.v1.Dapr.
var grpcGroups = map[string][]string{
	"invoke.v1": {"InvokeService"},
	"state.v1": {"GetState", "GetBulkState", "SaveState", "DeleteState",
		"DeleteBulkState", "ExecuteStateTransaction"},
	"state.v1alpha1":   {"QueryStateAlpha1"},
	"publish.v1":       {"PublishEvent", "BulkPublishEvent"},
	"publish.v1alpha1": {"BulkPublishEventAlpha1"},
	"bindings.v1":      {"InvokeBinding"},
	"secrets.v1":       {"GetSecret", "GetBulkSecret"},
	"actors.v1": {"RegisterActorTimer", "UnregisterActorTimer",
		"RegisterActorReminder", "GetActorReminder", "UnregisterActorReminder",
		"UnregisterActorRemindersByType", "ListActorReminders", "GetActorState",
		"ExecuteActorStateTransaction", "InvokeActor"},
	"actors.v1alpha1": {"SubscribeActorEventsAlpha1"},
	"metadata.v1":     {"GetMetadata", "SetMetadata"},
	"configuration.v1alpha1": {"GetConfigurationAlpha1",
		"SubscribeConfigurationAlpha1", "UnsubscribeConfigurationAlpha1"},
	"configuration.v1": {"GetConfiguration", "SubscribeConfiguration",
		"UnsubscribeConfiguration"},
	"lock.v1alpha1":   {"TryLockAlpha1"},
	"unlock.v1alpha1": {"UnlockAlpha1"},
	"subtlecrypto.v1alpha1": {"SubtleGetKeyAlpha1", "SubtleEncryptAlpha1",
		"SubtleDecryptAlpha1", "SubtleSignAlpha1", "SubtleVerifyAlpha1",
		"SubtleWrapKeyAlpha1", "SubtleUnwrapKeyAlpha1"},
	"crypto.v1alpha1": {"EncryptAlpha1", "DecryptAlpha1"},
	"workflows.v1alpha1": {"StartWorkflowAlpha1", "GetWorkflowAlpha1",
		"TerminateWorkflowAlpha1", "RaiseEventWorkflowAlpha1",
		"PurgeWorkflowAlpha1", "PauseWorkflowAlpha1", "ResumeWorkflowAlpha1"},
	"workflows.v1beta1": {"StartWorkflowBeta1", "GetWorkflowBeta1",
		"TerminateWorkflowBeta1", "RaiseEventWorkflowBeta1",
		"PurgeWorkflowBeta1", "PauseWorkflowBeta1", "ResumeWorkflowBeta1"},
	"jobs.v1alpha1": {"ScheduleJobAlpha1", "DeleteJobAlpha1", "GetJobAlpha1",
		"DeleteJobsByPrefixAlpha1", "ListJobsAlpha1"},
	"jobs.v1": {"ScheduleJob", "DeleteJob", "GetJob", "DeleteJobsByPrefix",
		"ListJobs"},
	"shutdown.v1":           {"Shutdown"},
	"subscribe.v1alpha1":    {"SubscribeTopicEventsAlpha1"},
	"conversation.v1alpha1": {"ConverseAlpha1"},
	"conversation.v1alpha2": {"ConverseAlpha2"},
}

// AllowGRPC reports whether the gRPC method fullMethod
// ("/dapr.proto.runtime.v1.Dapr/SaveState") is enabled. As in daprd, a
// runtime method missing from the table is refused whenever gRPC rules
// allow anything, and methods of other services are always allowed.
func (r *Rules) AllowGRPC(fullMethod string) bool {
	if r == nil || !strings.HasPrefix(fullMethod, runtimePrefix) {
		return true
	}
	if _, ok := r.grpcDenied[fullMethod]; ok {
		return false
	}
	if len(r.grpcAllowed) == 0 {
		return true
	}
	_, ok := r.grpcAllowed[fullMethod]
	return ok
}

// GRPCServerOptions check every call of the public gRPC API; nil without
// gRPC rules.
func (r *Rules) GRPCServerOptions() []grpc.ServerOption {
	if !r.GRPCActive() {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(r.UnaryServerInterceptor),
		grpc.ChainStreamInterceptor(r.StreamServerInterceptor),
	}
}

// UnaryServerInterceptor refuses calls to disabled methods.
func (r *Rules) UnaryServerInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !r.AllowGRPC(info.FullMethod) {
		return nil, errNotAvailable()
	}
	return handler(ctx, req)
}

// StreamServerInterceptor refuses streams of disabled methods.
func (r *Rules) StreamServerInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !r.AllowGRPC(info.FullMethod) {
		return errNotAvailable()
	}
	return handler(srv, ss)
}

// errNotAvailable is daprd's answer: ErrorFromHTTPResponseCode(501,
// "requested endpoint is not available").
func errNotAvailable() error {
	text := http.StatusText(http.StatusNotImplemented)
	st := status.New(codes.Unimplemented, text)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason: text,
		Domain: "dapr.io",
		Metadata: map[string]string{
			"http.code":          strconv.Itoa(http.StatusNotImplemented),
			"http.error_message": "requested endpoint is not available",
		},
	}); err == nil {
		st = d
	}
	return st.Err()
}
