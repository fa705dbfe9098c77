// Package conversation defines the conversation (LLM) building block
// (Dapr's conversation.* components, API v1.0-alpha1 and v1.0-alpha2): the
// Model interface its backends implement, the request and response they
// exchange, the Kind a components.Manager runs them with, and Scrub, the
// PII scrubber the API applies to inputs and outputs on request.
//
// Backends live in sub-packages and import only this package and
// components; builtin lists them for cmd.
package conversation

import (
	"context"
	"time"

	"github.com/tandemrun/tandem/components"
)

// Category is the spec.type prefix of conversation components.
const Category = "conversation"

// Role is who a message is from, as Dapr's alpha2 message types name it.
type Role string

// Roles.
const (
	RoleUser      Role = "user"
	RoleSystem    Role = "system"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// Part is one piece of a message: exactly one of Text, ToolCall or
// ToolResponse is set.
type Part struct {
	Text         *string
	ToolCall     *ToolCall
	ToolResponse *ToolResponse
}

// ToolCall is a call of a tool the model asked for (in an assistant
// message, or in a result).
type ToolCall struct {
	ID        string
	Name      string
	Arguments string
}

// ToolResponse is what a tool answered, sent back to the model.
type ToolResponse struct {
	ToolCallID string
	Name       string
	Content    string
}

// Message is one message of the conversation.
type Message struct {
	Role  Role
	Parts []Part
}

// Tool is a function the model may ask the caller to run. Parameters is
// its JSON schema.
type Tool struct {
	Name        string
	Description string
	Parameters  map[string]any
}

// Request is one conversation turn.
type Request struct {
	Messages    []Message
	Tools       []Tool
	ToolChoice  string
	Temperature float64
	Metadata    map[string]string
	// ResponseFormat is a JSON schema the answer must follow (nil: free).
	ResponseFormat map[string]any
	// PromptCacheRetention is how long the provider may cache the prompt
	// (nil: its default).
	PromptCacheRetention *time.Duration
}

// Choice is one answer of the model.
type Choice struct {
	FinishReason string
	Index        int64
	Content      string
	ToolCalls    []ToolCall
}

// Result is one output with its choices.
type Result struct {
	Choices []Choice
}

// Usage counts the tokens of a call.
type Usage struct {
	CompletionTokens uint64
	PromptTokens     uint64
	TotalTokens      uint64
}

// Response is the model's answer.
type Response struct {
	Outputs []Result
	Usage   *Usage
	// Model is the model that answered, if the provider says.
	Model string
}

// Model is a conversation backend. Implementations must be safe for
// concurrent use after Init returns.
type Model interface {
	Init(ctx context.Context, md components.Metadata) error
	Converse(ctx context.Context, req *Request) (*Response, error)
	Close() error
}

// Kind describes conversation components to a components.Manager. newModel
// makes an uninitialised backend for a spec.type (false if unknown); types
// lists the known ones.
func Kind(newModel func(typ string) (Model, bool), types []string) components.Kind[Model] {
	return components.Kind[Model]{
		Category: Category,
		Types:    types,
		New:      newModel,
		Init:     func(ctx context.Context, m Model, md components.Metadata) error { return m.Init(ctx, md) },
		Close:    func(m Model) error { return m.Close() },
	}
}
