// Package echo is the conversation.echo component: a model that answers
// with what it was sent, for tests and demos, as Dapr's echo does. Its
// answer joins the text of every message with newlines, asks for a call
// of every tool offered (arguments: the names of its parameters, sorted,
// comma-separated) and of every tool call in the messages, and counts one
// token per word.
package echo

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/conversation"
)

// Type is the component's spec.type.
const Type = "conversation.echo"

// Echo is the echo model. The zero value is ready after Init.
type Echo struct{}

var _ conversation.Model = (*Echo)(nil)

// New returns an uninitialised echo model.
func New() *Echo { return &Echo{} }

// Init accepts any metadata: echo has no settings.
func (*Echo) Init(context.Context, components.Metadata) error { return nil }

// Close does nothing.
func (*Echo) Close() error { return nil }

// Converse echoes req.
func (*Echo) Converse(_ context.Context, req *conversation.Request) (*conversation.Response, error) {
	if req == nil || len(req.Messages) == 0 {
		return &conversation.Response{}, nil
	}
	var calls []conversation.ToolCall
	for i, tool := range req.Tools {
		var args []string
		if props, ok := tool.Parameters["properties"]; ok {
			m, ok := props.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("tool %q: parameters.properties must be an object, got %T", tool.Name, props)
			}
			for name := range m {
				args = append(args, name)
			}
			slices.Sort(args)
		}
		calls = append(calls, conversation.ToolCall{ID: strconv.Itoa(i), Name: tool.Name, Arguments: strings.Join(args, ",")})
	}
	var texts []string
	for _, msg := range req.Messages {
		for _, p := range msg.Parts {
			switch {
			case p.Text != nil:
				texts = append(texts, *p.Text)
			case p.ToolCall != nil:
				calls = append(calls, *p.ToolCall)
			case p.ToolResponse != nil:
				r := p.ToolResponse
				texts = append(texts, fmt.Sprintf("Tool Response for tool ID '%s' with name '%s': %s", r.ToolCallID, r.Name, r.Content))
			default:
				return nil, fmt.Errorf("a %s message has an empty part: give it text, a tool call or a tool response", msg.Role)
			}
		}
	}
	content := strings.Join(texts, "\n")
	reason := "stop"
	if len(calls) > 0 {
		reason = "tool_calls"
	}
	tokens := uint64(len(strings.Fields(content)))
	return &conversation.Response{
		Outputs: []conversation.Result{{Choices: []conversation.Choice{{FinishReason: reason, Content: content, ToolCalls: calls}}}},
		Usage:   &conversation.Usage{CompletionTokens: tokens, PromptTokens: tokens, TotalTokens: 2 * tokens},
	}, nil
}
