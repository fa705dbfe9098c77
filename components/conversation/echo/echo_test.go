package echo

import (
	"context"
	"reflect"
	"testing"

	"github.com/tandemrun/tandem/components/conversation"
)

func text(s string) conversation.Part { return conversation.Part{Text: &s} }

func TestConverse(t *testing.T) {
	req := &conversation.Request{
		Messages: []conversation.Message{
			{Role: conversation.RoleUser, Parts: []conversation.Part{text("well hello there")}},
			{Role: conversation.RoleAssistant, Parts: []conversation.Part{text("ok"), {ToolCall: &conversation.ToolCall{ID: "c1", Name: "f", Arguments: "{}"}}}},
			{Role: conversation.RoleTool, Parts: []conversation.Part{{ToolResponse: &conversation.ToolResponse{ToolCallID: "c1", Name: "f", Content: "done"}}}},
		},
		Tools: []conversation.Tool{{Name: "g", Parameters: map[string]any{"properties": map[string]any{"b": 1, "a": 2}}}},
	}
	resp, err := New().Converse(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := &conversation.Response{
		Outputs: []conversation.Result{{Choices: []conversation.Choice{{
			FinishReason: "tool_calls",
			Content:      "well hello there\nok\nTool Response for tool ID 'c1' with name 'f': done",
			ToolCalls:    []conversation.ToolCall{{ID: "0", Name: "g", Arguments: "a,b"}, {ID: "c1", Name: "f", Arguments: "{}"}},
		}}}},
		Usage: &conversation.Usage{CompletionTokens: 14, PromptTokens: 14, TotalTokens: 28},
	}
	if !reflect.DeepEqual(resp, want) {
		t.Fatalf("got %+v\nwant %+v", resp, want)
	}
}

func TestConverseStopAndErrors(t *testing.T) {
	resp, err := New().Converse(context.Background(), &conversation.Request{Messages: []conversation.Message{{Parts: []conversation.Part{text("hi")}}}})
	if err != nil || resp.Outputs[0].Choices[0].FinishReason != "stop" {
		t.Fatalf("got %+v, %v; want finish reason stop", resp, err)
	}
	if _, err := New().Converse(context.Background(), &conversation.Request{Messages: []conversation.Message{{Parts: []conversation.Part{{}}}}}); err == nil {
		t.Fatal("empty part: want an error")
	}
	if _, err := New().Converse(context.Background(), &conversation.Request{
		Messages: []conversation.Message{{Parts: []conversation.Part{text("hi")}}},
		Tools:    []conversation.Tool{{Name: "g", Parameters: map[string]any{"properties": "x"}}},
	}); err == nil {
		t.Fatal("properties not an object: want an error")
	}
}
