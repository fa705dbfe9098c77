package api

//lint:file-ignore SA1019 Dapr deprecated the alpha1 conversation messages; daprd 1.18 still serves them, and so do we

import (
	"context"
	"log/slog"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/conversation"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/resiliency"
)

// ConversationConfig is what the conversation API serves with.
type ConversationConfig struct {
	Registry *components.Registry[conversation.Model]
	// Resiliency, if set, returns the policies in effect: calls run under
	// the component's outbound policy.
	Resiliency func() *resiliency.Set
	Log        *slog.Logger
}

// Conversation is the conversation (LLM) API, v1.0-alpha1 and
// v1.0-alpha2, as daprd serves it. It is safe for concurrent use.
type Conversation struct {
	cfg ConversationConfig
	log *slog.Logger
}

// NewConversation returns the conversation API for cfg.
func NewConversation(cfg ConversationConfig) *Conversation {
	if cfg.Registry == nil {
		cfg.Registry = components.NewRegistry[conversation.Model]()
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Conversation{cfg: cfg, log: log.With("component", "conversation")}
}

// converse runs req on the component name under its outbound policy.
func (c *Conversation) converse(ctx context.Context, name string, req *conversation.Request) (*conversation.Response, error) {
	m, release, err := c.cfg.Registry.Acquire(name)
	if err != nil {
		c.log.Debug("conversation component unavailable", "name", name, "error", err)
		return nil, apierr.ConversationNotFound(name)
	}
	defer release()
	op := func(ctx context.Context) (*conversation.Response, error) { return m.Converse(ctx, req) }
	var resp *conversation.Response
	if p := c.policy(name); p != nil {
		resp, err = resiliency.Do(ctx, p, op)
	} else {
		resp, err = op(ctx)
	}
	if err != nil {
		c.log.Debug("converse failed", "name", name, "error", err)
		return nil, apierr.ConversationInvoke(name, err)
	}
	if resp == nil {
		resp = &conversation.Response{}
	}
	return resp, nil
}

func (c *Conversation) policy(name string) *resiliency.Policy {
	if c.cfg.Resiliency == nil {
		return nil
	}
	return c.cfg.Resiliency().ForComponentOutbound(name, resiliency.Conversation)
}

// found checks that name is a conversation component before the request
// is looked at, as daprd does.
func (c *Conversation) found(name string) error {
	_, release, err := c.cfg.Registry.Acquire(name)
	if err != nil {
		return apierr.ConversationNotFound(name)
	}
	release()
	return nil
}

// scrubIf returns s scrubbed of personal data when on.
func scrubIf(on bool, s string) string {
	if on {
		return conversation.Scrub(s)
	}
	return s
}

// roleOf maps an alpha1 input's free-form role as daprd does; unknown
// roles are the user's.
func roleOf(r string) conversation.Role {
	switch r {
	case "system":
		return conversation.RoleSystem
	case "assistant", "ai":
		return conversation.RoleAssistant
	case "tool":
		return conversation.RoleTool
	}
	return conversation.RoleUser
}

// ConverseAlpha1 is the first conversation API: plain text inputs, one
// text result per output.
func (c *Conversation) ConverseAlpha1(ctx context.Context, in *runtimev1.ConversationRequest) (*runtimev1.ConversationResponse, error) {
	if err := c.found(in.GetName()); err != nil {
		return nil, err
	}
	if len(in.GetInputs()) == 0 {
		return nil, apierr.ConversationMissingInputs(in.GetName())
	}
	req := &conversation.Request{Temperature: in.GetTemperature(), Metadata: in.GetMetadata()}
	for _, input := range in.GetInputs() {
		text := scrubIf(input.GetScrubPII(), input.GetContent())
		req.Messages = append(req.Messages, conversation.Message{Role: roleOf(input.GetRole()), Parts: []conversation.Part{{Text: &text}}})
	}
	resp, err := c.converse(ctx, in.GetName(), req)
	if err != nil {
		return nil, err
	}
	out := &runtimev1.ConversationResponse{}
	if in.GetContextID() != "" {
		id := in.GetContextID()
		out.ContextID = &id
	}
	for _, o := range resp.Outputs {
		var content string
		if len(o.Choices) > 0 {
			content = o.Choices[0].Content
		}
		out.Outputs = append(out.Outputs, &runtimev1.ConversationResult{
			Result:     scrubIf(in.GetScrubPII(), content),
			Parameters: in.GetParameters(),
		})
	}
	return out, nil
}

// textsOf returns the texts of content, scrubbed when scrub is set.
func textsOf(content []*runtimev1.ConversationMessageContent, scrub bool) []conversation.Part {
	parts := make([]conversation.Part, 0, len(content))
	for _, ct := range content {
		t := scrubIf(scrub, ct.GetText())
		parts = append(parts, conversation.Part{Text: &t})
	}
	return parts
}

// messageOf converts one alpha2 message.
func messageOf(name string, msg *runtimev1.ConversationMessage, scrub bool) (conversation.Message, error) {
	switch m := msg.GetMessageTypes().(type) {
	case *runtimev1.ConversationMessage_OfDeveloper:
		return conversation.Message{Role: conversation.RoleUser, Parts: textsOf(m.OfDeveloper.GetContent(), scrub)}, nil
	case *runtimev1.ConversationMessage_OfSystem:
		return conversation.Message{Role: conversation.RoleSystem, Parts: textsOf(m.OfSystem.GetContent(), scrub)}, nil
	case *runtimev1.ConversationMessage_OfUser:
		return conversation.Message{Role: conversation.RoleUser, Parts: textsOf(m.OfUser.GetContent(), scrub)}, nil
	case *runtimev1.ConversationMessage_OfAssistant:
		out := conversation.Message{Role: conversation.RoleAssistant, Parts: textsOf(m.OfAssistant.GetContent(), scrub)}
		for _, tc := range m.OfAssistant.GetToolCalls() {
			if tc.GetToolTypes() == nil {
				return out, apierr.ConversationInvalidParams(name, "tool types cannot be nil: give each tool call a function")
			}
			out.Parts = append(out.Parts, conversation.Part{ToolCall: &conversation.ToolCall{
				ID: tc.GetId(), Name: tc.GetFunction().GetName(), Arguments: tc.GetFunction().GetArguments(),
			}})
		}
		return out, nil
	case *runtimev1.ConversationMessage_OfTool:
		out := conversation.Message{Role: conversation.RoleTool}
		for _, ct := range m.OfTool.GetContent() {
			out.Parts = append(out.Parts, conversation.Part{ToolResponse: &conversation.ToolResponse{
				ToolCallID: m.OfTool.GetToolId(), Name: m.OfTool.GetName(), Content: scrubIf(scrub, ct.GetText()),
			}})
		}
		return out, nil
	case nil:
		return conversation.Message{}, apierr.ConversationInvalidParams(name, "message type cannot be nil: set one of ofDeveloper, ofSystem, ofUser, ofAssistant, ofTool")
	}
	return conversation.Message{}, apierr.ConversationInvalidParams(name, "unknown message type")
}

// toolChoice validates the request's tool choice as daprd does: auto (the
// default with tools), none, required (needs tools) or a tool's name.
func toolChoice(in *runtimev1.ConversationRequestAlpha2) (string, error) {
	choice, tools := in.GetToolChoice(), in.GetTools()
	if choice == "" && len(tools) > 0 {
		choice = "auto"
	}
	switch choice {
	case "auto", "none", "":
		return choice, nil
	case "required":
		if len(tools) == 0 {
			return "", apierr.ConversationInvalidParams(in.GetName(), "tool choice must be 'auto', 'none', 'required', or a specific tool name matching the tools available to be used")
		}
		return choice, nil
	}
	if tools == nil {
		return choice, nil
	}
	for _, t := range tools {
		if t.GetFunction().GetName() == choice {
			return choice, nil
		}
	}
	return "", apierr.ConversationInvalidParams(in.GetName(), "tool choice selected was not found. Must be 'auto', 'none', 'required', or a specific tool name matching the tools available to be used")
}

// ConverseAlpha2 is the current conversation API: typed messages, tools,
// usage.
func (c *Conversation) ConverseAlpha2(ctx context.Context, in *runtimev1.ConversationRequestAlpha2) (*runtimev1.ConversationResponseAlpha2, error) {
	name := in.GetName()
	if err := c.found(name); err != nil {
		return nil, err
	}
	if len(in.GetInputs()) == 0 {
		return nil, apierr.ConversationMissingInputs(name)
	}
	req := &conversation.Request{Temperature: in.GetTemperature(), Metadata: in.GetMetadata()}
	if rf := in.GetResponseFormat(); rf != nil {
		req.ResponseFormat = rf.AsMap()
	}
	for _, input := range in.GetInputs() {
		for _, msg := range input.GetMessages() {
			m, err := messageOf(name, msg, input.GetScrubPii())
			if err != nil {
				return nil, err
			}
			req.Messages = append(req.Messages, m)
		}
	}
	if d := in.GetPromptCacheRetention(); d != nil {
		v := d.AsDuration()
		req.PromptCacheRetention = &v
	}
	choice, err := toolChoice(in)
	if err != nil {
		return nil, err
	}
	req.ToolChoice = choice
	for _, t := range in.GetTools() {
		if f := t.GetFunction(); f != nil {
			req.Tools = append(req.Tools, conversation.Tool{Name: f.GetName(), Description: f.GetDescription(), Parameters: f.GetParameters().AsMap()})
		}
	}
	resp, err := c.converse(ctx, name, req)
	if err != nil {
		return nil, err
	}
	out := &runtimev1.ConversationResponseAlpha2{}
	if in.GetContextId() != "" {
		id := in.GetContextId()
		out.ContextId = &id
	}
	for _, o := range resp.Outputs {
		result := &runtimev1.ConversationResultAlpha2{Usage: usageOf(resp.Usage)}
		if resp.Model != "" {
			model := resp.Model
			result.Model = &model
		}
		for _, ch := range o.Choices {
			msg := &runtimev1.ConversationResultMessage{Content: scrubIf(in.GetScrubPii(), ch.Content)}
			for _, tc := range ch.ToolCalls {
				call := &runtimev1.ConversationToolCalls{ToolTypes: &runtimev1.ConversationToolCalls_Function{
					Function: &runtimev1.ConversationToolCallsOfFunction{Name: tc.Name, Arguments: tc.Arguments},
				}}
				if tc.ID != "" {
					id := tc.ID
					call.Id = &id
				}
				msg.ToolCalls = append(msg.ToolCalls, call)
			}
			result.Choices = append(result.Choices, &runtimev1.ConversationResultChoices{FinishReason: ch.FinishReason, Index: ch.Index, Message: msg})
		}
		out.Outputs = append(out.Outputs, result)
	}
	return out, nil
}

func usageOf(u *conversation.Usage) *runtimev1.ConversationResultAlpha2CompletionUsage {
	if u == nil {
		return nil
	}
	return &runtimev1.ConversationResultAlpha2CompletionUsage{
		CompletionTokens: u.CompletionTokens, PromptTokens: u.PromptTokens, TotalTokens: u.TotalTokens,
	}
}
