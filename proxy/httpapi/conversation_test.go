package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/conversation"
	"github.com/tandemrun/tandem/components/conversation/echo"
	"github.com/tandemrun/tandem/proxy/api"
)

// TestConverseRoutes checks the routes' JSON as daprd writes it: no empty
// fields, 64-bit counts as strings, errors in Dapr's shape.
func TestConverseRoutes(t *testing.T) {
	newFn, types := components.FactoryFromMap(map[string]func() conversation.Model{echo.Type: func() conversation.Model { return echo.New() }})
	m := components.NewManager(conversation.Kind(newFn, types), components.ManagerOptions{Resolve: components.Env{AppID: "me"}.Resolve})
	t.Cleanup(func() { _ = m.Close() })
	m.Apply([]components.Component{{Name: "echo", Type: echo.Type, InitTimeout: components.DefaultInitTimeout}})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := m.Registry().Ready("echo"); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("echo not ready: %v", err)
		}
	}
	srv := httptest.NewServer(New(Config{Conversation: api.NewConversation(api.ConversationConfig{Registry: m.Registry()})}))
	defer srv.Close()

	for _, tc := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"alpha1", "/v1.0-alpha1/conversation/echo/converse", `{"inputs":[{"content":"well hello there"}]}`, 200,
			`{"outputs":[{"result":"well hello there"}]}`},
		{"alpha1 no inputs", "/v1.0-alpha1/conversation/echo/converse", `{"metadata":{"model":"daprGPT"}}`, 400,
			`{"errorCode":"ERR_CONVERSATION_MISSING_INPUTS","message":"failed conversing with component echo: missing inputs in request"}`},
		{"alpha2", "/v1.0-alpha2/conversation/echo/converse", `{"inputs":[{"messages":[{"ofUser":{"content":[{"text":"my email is test@test.com"}]}}],"scrubPii":true}]}`, 200,
			`{"outputs":[{"choices":[{"finishReason":"stop","message":{"content":"my email is <EMAIL_ADDRESS>"}}],"usage":{"completionTokens":"4","promptTokens":"4","totalTokens":"8"}}]}`},
		{"alpha2 unknown component", "/v1.0-alpha2/conversation/nope/converse", `{}`, 400,
			`{"errorCode":"ERR_CONVERSATION_NOT_FOUND","message":"failed finding conversation component nope"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+tc.path, "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || strings.ReplaceAll(string(b), " ", "") != strings.ReplaceAll(tc.want, " ", "") {
				t.Fatalf("got %d %s\nwant %d %s", resp.StatusCode, b, tc.status, tc.want)
			}
		})
	}
}
