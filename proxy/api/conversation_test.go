package api

//lint:file-ignore SA1019 Dapr deprecated the alpha1 conversation messages; daprd 1.18 still serves them, and so do we

import (
	"context"
	"errors"
	"testing"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/conversation"
	"github.com/tandemrun/tandem/components/conversation/echo"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// newEchoConversation is the conversation API with one conversation.echo
// component called "echo".
func newEchoConversation(t *testing.T) *Conversation {
	t.Helper()
	newFn, types := components.FactoryFromMap(map[string]func() conversation.Model{echo.Type: func() conversation.Model { return echo.New() }})
	m := components.NewManager(conversation.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "me"}.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{{Name: "echo", Type: echo.Type, InitTimeout: components.DefaultInitTimeout}})
	waitUntil(t, "echo ready", func() bool { _, err := m.Registry().Ready("echo"); return err == nil })
	return NewConversation(ConversationConfig{Registry: m.Registry()})
}

func userMsg(text string) *runtimev1.ConversationMessage {
	return &runtimev1.ConversationMessage{MessageTypes: &runtimev1.ConversationMessage_OfUser{OfUser: &runtimev1.ConversationMessageOfUser{
		Content: []*runtimev1.ConversationMessageContent{{Text: text}},
	}}}
}

func TestConverseAlpha1(t *testing.T) {
	ctx := context.Background()
	c := newEchoConversation(t)
	if _, err := c.ConverseAlpha1(ctx, &runtimev1.ConversationRequest{Name: "nope", Inputs: []*runtimev1.ConversationInput{{Content: "x"}}}); !errors.Is(err, apierr.ConversationNotFound("nope")) {
		t.Errorf("unknown component: %v", err)
	}
	if _, err := c.ConverseAlpha1(ctx, &runtimev1.ConversationRequest{Name: "echo"}); !errors.Is(err, apierr.ConversationMissingInputs("echo")) {
		t.Errorf("no inputs: %v", err)
	}
	on := true
	out, err := c.ConverseAlpha1(ctx, &runtimev1.ConversationRequest{Name: "echo", ScrubPII: &on, ContextID: proto.String("ctx"), Inputs: []*runtimev1.ConversationInput{
		{Content: "from 10.8.9.1"}, {Content: "mail test@test.com"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.GetOutputs()) != 1 || out.GetOutputs()[0].GetResult() != "from <IP>\nmail <EMAIL_ADDRESS>" || out.GetContextID() != "ctx" {
		t.Errorf("got %v", out)
	}
}

func TestConverseAlpha2(t *testing.T) {
	ctx := context.Background()
	c := newEchoConversation(t)
	params, err := structpb.NewStruct(map[string]any{"properties": map[string]any{"b": map[string]any{}, "a": map[string]any{}}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.ConverseAlpha2(ctx, &runtimev1.ConversationRequestAlpha2{
		Name: "echo", ContextId: proto.String("c1"),
		Inputs: []*runtimev1.ConversationInputAlpha2{{Messages: []*runtimev1.ConversationMessage{userMsg("call +2222222222")}, ScrubPii: proto.Bool(true)}},
		Tools:  []*runtimev1.ConversationTools{{ToolTypes: &runtimev1.ConversationTools_Function{Function: &runtimev1.ConversationToolsFunction{Name: "f", Parameters: params}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ch := out.GetOutputs()[0].GetChoices()[0]
	if ch.GetMessage().GetContent() != "call <PHONE_NUMBER>" || ch.GetFinishReason() != "tool_calls" || out.GetContextId() != "c1" {
		t.Errorf("got %v", out)
	}
	if tc := ch.GetMessage().GetToolCalls(); len(tc) != 1 || tc[0].GetId() != "0" || tc[0].GetFunction().GetArguments() != "a,b" {
		t.Errorf("tool calls %v", tc)
	}
	if u := out.GetOutputs()[0].GetUsage(); u.GetTotalTokens() != 4 {
		t.Errorf("usage %v", u)
	}

	for _, tc := range []struct {
		name string
		req  *runtimev1.ConversationRequestAlpha2
		code string
	}{
		{"no inputs", &runtimev1.ConversationRequestAlpha2{Name: "echo"}, apierr.CodeConversationMissingInputs},
		{"unknown component", &runtimev1.ConversationRequestAlpha2{Name: "x"}, apierr.CodeConversationNotFound},
		{"message without type", &runtimev1.ConversationRequestAlpha2{Name: "echo", Inputs: []*runtimev1.ConversationInputAlpha2{{Messages: []*runtimev1.ConversationMessage{{}}}}}, apierr.CodeConversationInvalidParams},
		{"tool call without function", &runtimev1.ConversationRequestAlpha2{Name: "echo", Inputs: []*runtimev1.ConversationInputAlpha2{{Messages: []*runtimev1.ConversationMessage{{
			MessageTypes: &runtimev1.ConversationMessage_OfAssistant{OfAssistant: &runtimev1.ConversationMessageOfAssistant{ToolCalls: []*runtimev1.ConversationToolCalls{{Id: proto.String("c")}}}},
		}}}}}, apierr.CodeConversationInvalidParams},
		{"required without tools", &runtimev1.ConversationRequestAlpha2{Name: "echo", ToolChoice: proto.String("required"), Inputs: []*runtimev1.ConversationInputAlpha2{{Messages: []*runtimev1.ConversationMessage{userMsg("x")}}}}, apierr.CodeConversationInvalidParams},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.ConverseAlpha2(ctx, tc.req)
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Code != tc.code {
				t.Fatalf("got %v, want %s", err, tc.code)
			}
		})
	}
}
