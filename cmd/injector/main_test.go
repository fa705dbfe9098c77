package main

import (
	"io"
	"strings"
	"testing"
)

func TestOptionsFromEnv(t *testing.T) {
	env := map[string]string{"NAMESPACE": "tandem-system", "SIDECAR_IMAGE": "tandemd:1"}
	o, err := optionsFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if o.SentryAddress != "dapr-sentry.tandem-system.svc.cluster.local:443" || o.OperatorAddress != "dapr-api.tandem-system.svc.cluster.local:443" ||
		o.TrustBundleConfigMap != "dapr-trust-bundle" || o.ImagePullPolicy != "IfNotPresent" {
		t.Fatalf("got %+v", o)
	}
	env["DAPR_SENTRY_ADDRESS"], env["SENTRY_ADDRESS"], env["DAPR_CONTROL_PLANE_TRUST_DOMAIN"] = "s:1", "old:2", "example.org"
	if o, err = optionsFromEnv(func(k string) string { return env[k] }); err != nil || o.SentryAddress != "s:1" || o.ControlPlaneTrustDomain != "example.org" {
		t.Fatalf("Dapr's variable names: %+v, %v", o, err)
	}
	if _, err := optionsFromEnv(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "NAMESPACE") {
		t.Fatalf("no NAMESPACE: %v", err)
	}
}

func TestParse(t *testing.T) {
	f, err := parse([]string{"--port", "4001", "--kubeconfig", "/k", "--scheduler-enabled=false"}, io.Discard)
	if err != nil || f.port != 4001 {
		t.Fatalf("parse: %+v, %v", f, err)
	}
	if _, err := parse([]string{"extra"}, io.Discard); err == nil {
		t.Fatal("positional argument accepted")
	}
}
