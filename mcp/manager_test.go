package mcp

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func eventually(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestManager(t *testing.T) {
	urlA, urlB := streamable(t, "A", nil), streamable(t, "B", nil)
	e := NewExecutor(nil)
	var hosted, released atomic.Int32
	m := NewManager(ManagerConfig{Executor: e, OnRegister: func() { hosted.Add(1) }, OnUnregister: func() { released.Add(1) }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if m.Ready() {
		t.Fatal("ready before the first set")
	}

	invalid := "kind: MCPServer\nmetadata:\n  name: invalid\nspec:\n  ignoreErrors: true\n  endpoint:\n    streamableHTTP:\n      url: http://a\n    sse:\n      url: http://b\n"
	dead := httpDoc("dead", "streamableHTTP", "http://127.0.0.1:1", "      timeout: 1s\n  ignoreErrors: true\n")
	m.Update([]Doc{{Raw: []byte(httpDoc("s", "streamableHTTP", urlA, ""))}, {Raw: []byte(invalid)}, {Raw: []byte(dead)}})
	eventually(t, "the first set", m.Ready)
	if got := m.Names(); !slices.Equal(got, []string{"dead", "s"}) {
		t.Fatalf("loaded %v", got)
	}
	if got := e.Registered(); !slices.Equal(got, []string{"s"}) {
		t.Fatalf("registered %v", got)
	}
	call := func() string {
		return text(callResult(t, run(t, e, CallToolWorkflow("s", "get_weather"), map[string]any{"arguments": map[string]any{"city": "X"}}, nil)))
	}
	if got := call(); !strings.HasPrefix(got, "A:") {
		t.Fatal(got)
	}

	// Changed: the new server answers; removed: gone.
	m.Update([]Doc{{Raw: []byte(httpDoc("s", "streamableHTTP", urlB, ""))}})
	eventually(t, "the reload", func() bool { return slices.Equal(m.Names(), []string{"s"}) })
	eventually(t, "server B", func() bool { return strings.HasPrefix(call(), "B:") })
	m.Update(nil)
	eventually(t, "the removal", func() bool { return len(m.Names()) == 0 && len(e.Registered()) == 0 })
	// Every registration was released: A, then B after the reload.
	if hosted.Load() != 2 || released.Load() != 2 {
		t.Fatalf("OnRegister called %d times, OnUnregister %d", hosted.Load(), released.Load())
	}
}

func TestManagerFatal(t *testing.T) {
	m := NewManager(ManagerConfig{Executor: NewExecutor(nil)})
	m.Update([]Doc{{Raw: []byte(httpDoc("dead", "streamableHTTP", "http://127.0.0.1:1", "      timeout: 1s\n"))}})
	err := m.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), `MCPServer "dead"`) {
		t.Fatalf("err %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"two transports", "metadata:\n  name: x\nspec:\n  endpoint:\n    streamableHTTP:\n      url: http://a\n    sse:\n      url: http://b\n", "exactly one"},
		{"no transport", "metadata:\n  name: x\nspec:\n  endpoint: {}\n", "exactly one"},
		{"scheme", "metadata:\n  name: x\nspec:\n  endpoint:\n    sse:\n      url: ftp://a\n", "scheme must be http or https"},
		{"no name", "spec:\n  endpoint:\n    sse:\n      url: http://a\n", "metadata.name"},
		{"escaping command", "metadata:\n  name: x\nspec:\n  endpoint:\n    stdio:\n      command: ../../bin/sh\n", "escape"},
		{"oauth2 without secret", "metadata:\n  name: x\nspec:\n  endpoint:\n    sse:\n      url: http://a\n      auth:\n        oauth2:\n          issuer: http://t\n", "secretKeyRef is required"},
		{"hook without name", "metadata:\n  name: x\nspec:\n  endpoint:\n    sse:\n      url: http://a\n  middleware:\n    afterCallTool:\n    - workflow: {}\n", "workflowName: missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse([]byte(tc.doc))
			if err == nil {
				err = s.Validate()
			}
			if err == nil {
				err = s.CheckSecurity(false)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	s, err := Parse([]byte("metadata:\n  name: x\nspec:\n  endpoint:\n    stdio:\n      command: server\n"))
	if err != nil || s.Validate() != nil || s.CheckSecurity(false) != nil || s.CheckSecurity(true) == nil {
		t.Fatalf("stdio: parse %v, self-hosted %v, kubernetes must refuse", err, s.CheckSecurity(false))
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(httpDoc("s", "streamableHTTP", "http://localhost:1", "      timeout: 5s\n      headers:\n      - name: a\n        value: 1\n")))
	f.Add([]byte("metadata:\n  name: x\nspec:\n  endpoint:\n    stdio:\n      command: server\n      env:\n      - name: A\n        value: {b: 1}\n"))
	f.Add([]byte("spec: {endpoint: {sse: {url: 'http://x', timeout: 1h}}, middleware: {beforeCallTool: [{workflow: {workflowName: w, appID: a}, mutate: true}]}}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := Parse(raw)
		if err != nil {
			return
		}
		_ = s.Validate()
		_ = s.CheckSecurity(false)
		_ = s.Timeout()
		_ = s.LogName()
		if _, ok := parseWorkflowName(ListToolsWorkflow(s.Name())); !ok && s.Name() != "" && !strings.Contains(s.Name(), ".") {
			t.Fatalf("ListTools name of %q does not parse", s.Name())
		}
	})
}
