package grpcapi

//lint:file-ignore SA1019 Dapr deprecated the alpha1 conversation messages; daprd 1.18 still serves them, and so do we

import (
	"context"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/proxy/apierr"
)

// ConverseAlpha1 sends plain text inputs to a conversation component.
func (a *API) ConverseAlpha1(ctx context.Context, in *runtimev1.ConversationRequest) (*runtimev1.ConversationResponse, error) {
	if a.cfg.Conversation == nil {
		return a.UnimplementedDaprServer.ConverseAlpha1(ctx, in)
	}
	out, err := a.cfg.Conversation.ConverseAlpha1(ctx, in)
	return out, apierr.GRPC(err)
}

// ConverseAlpha2 sends typed messages, with tools, to a conversation
// component.
func (a *API) ConverseAlpha2(ctx context.Context, in *runtimev1.ConversationRequestAlpha2) (*runtimev1.ConversationResponseAlpha2, error) {
	if a.cfg.Conversation == nil {
		return a.UnimplementedDaprServer.ConverseAlpha2(ctx, in)
	}
	out, err := a.cfg.Conversation.ConverseAlpha2(ctx, in)
	return out, apierr.GRPC(err)
}
