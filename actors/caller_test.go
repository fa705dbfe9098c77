package actors

import (
	"context"
	"testing"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
)

func TestCallerIdentity(t *testing.T) {
	r := &Runtime{cfg: Config{AppID: "me", Namespace: "ns"}}
	req := &internalsv1.InternalInvokeRequest{Metadata: map[string]*internalsv1.ListStringValue{
		callerAppHeader: {Values: []string{"spoofed"}}, "other": {Values: []string{"kept"}},
	}}
	out := r.stampCaller(req)
	if got := out.GetMetadata()[callerAppHeader].GetValues(); len(got) != 1 || got[0] != "me" {
		t.Errorf("stamped caller %v, want me", got)
	}
	if out.GetMetadata()[callerNamespaceHeader].GetValues()[0] != "ns" || out.GetMetadata()["other"].GetValues()[0] != "kept" {
		t.Errorf("stamped metadata %v", out.GetMetadata())
	}
	if req.GetMetadata()[callerAppHeader].GetValues()[0] != "spoofed" {
		t.Error("the caller's request was changed")
	}
	// Without TLS the header names the caller.
	if got := servedCaller(context.Background(), out); got != "me" {
		t.Errorf("served caller %q, want me", got)
	}
	if app, remote := CallerApp(context.Background()); remote || app != "" {
		t.Error("a call of this sidecar is taken as remote")
	}
	ctx := withCaller(context.Background(), "b")
	if app, remote := CallerApp(ctx); !remote || app != "b" {
		t.Errorf("served for b: %q %v", app, remote)
	}
	if _, remote := CallerApp(withoutCaller(ctx)); remote {
		t.Error("a nested call of this sidecar keeps the remote caller")
	}
}
