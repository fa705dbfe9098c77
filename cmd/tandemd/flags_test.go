package main

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestAppWasmFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" : no error
	}{
		{[]string{"--app-id", "a", "--app-wasm", "app.wasm", "--app-wasm-memory", "128", "--app-wasm-timeout", "5s", "--app-wasm-instances", "4"}, ""},
		{[]string{"--app-wasm", "app.wasm"}, "app-id"},
		{[]string{"--app-id", "a", "--app-wasm", "app.wasm", "--app-port", "8080"}, "--app-port both"},
		{[]string{"--app-id", "a", "--app-wasm", "app.wasm", "--app-protocol", "grpc"}, "drop --app-protocol"},
		{[]string{"--app-id", "a", "--app-wasm", "app.wasm", "--app-wasm-memory", "0"}, "app-wasm-memory"},
		{[]string{"--app-id", "a", "--app-wasm", "app.wasm", "--app-wasm-timeout", "0s"}, "app-wasm-timeout"},
		{[]string{"--app-id", "a", "--app-wasm", "app.wasm", "--app-wasm-instances", "0"}, "app-wasm-instances"},
	} {
		o, err := ParseFlags(tc.args, nil, nil)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case tc.want == "" && (o.AppWasm.MemoryMiB != 128 || o.AppWasm.Timeout != 5*time.Second || o.AppWasm.MaxInstances != 4):
			t.Errorf("%v: got %+v", tc.args, o.AppWasm)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: err %v, want one saying %q", tc.args, err, tc.want)
		}
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	o, err := ParseFlags(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Options{
		AppFlags: AppFlags{
			AppProtocol:       "http",
			AppChannelAddress: "127.0.0.1",
			AppHealth:         AppHealth{Path: "/healthz", Interval: 5 * time.Second, Timeout: 500 * time.Millisecond, Threshold: 3},
			AppWasm:           AppWasm{MemoryMiB: 64, Timeout: time.Minute, MaxInstances: 32, CacheDir: defaultWasmCacheDir()},
		},
		APIFlags: APIFlags{HTTPPort: 3500, GRPCPort: 50001, MaxRequestBodySize: 4 << 20, ReadBufferSize: 4 << 10},
		IdentityFlags: IdentityFlags{
			TrustAnchors:            []byte{},
			Mode:                    "standalone",
			ControlPlaneTrustDomain: "localhost",
			ControlPlaneNamespace:   "default",
			Namespace:               "default",
			LeanTransport:           true,
			MetricsNamespace:        "",
		},
		ObservabilityFlags: ObservabilityFlags{LogLevel: "info", MetricsEnabled: true, MetricsPort: 9090, MetricsListenAddress: "0.0.0.0"},
		ShutdownFlags:      ShutdownFlags{GracefulShutdown: 5 * time.Second},
		UnsupportedFlags:   UnsupportedFlags{ActorsDisseminateTimeout: 30 * time.Second, SchedulerJobStreams: 3},
	}
	if !reflect.DeepEqual(*o, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", *o, want)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, o *Options)
	}{
		{
			name: "double dash, as dapr run passes them",
			args: []string{"--app-id", "orders", "--app-port", "3000", "--dapr-http-port", "3601", "--dapr-grpc-port", "50011",
				"--app-protocol", "GRPC", "--metrics-port", "9091", "--dapr-internal-grpc-port", "50012", "--app-max-concurrency", "-1",
				"--max-body-size", "16Mi", "--read-buffer-size", "8Ki", "--profile-port", "-1", "--log-as-json", "--enable-api-logging"},
			check: func(t *testing.T, o *Options) {
				got := []any{o.AppID, o.AppPort, o.HTTPPort, o.GRPCPort, o.AppProtocol, o.MetricsPort, o.InternalGRPCPort,
					o.AppMaxConcurrency, o.MaxRequestBodySize, o.ReadBufferSize, o.LogAsJSON, *o.EnableAPILogging, len(o.Ignored)}
				want := []any{"orders", 3000, 3601, 50011, "grpc", 9091, 50012, 0, 16 << 20, 8 << 10, true, true, 0}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %v\nwant %v (ignored %v)", got, want, o.Ignored)
				}
			},
		},
		{
			name: "single dash",
			args: []string{"-app-id", "a", "-app-port=8080", "-enable-metrics=false", "-log-level", "DEBUG"},
			check: func(t *testing.T, o *Options) {
				if o.AppID != "a" || o.AppPort != 8080 || o.MetricsEnabled || o.LogLevel != "debug" || o.SlogLevel() != slog.LevelDebug {
					t.Errorf("got %+v", o)
				}
			},
		},
		{
			name: "repeatable and comma separated paths",
			args: []string{"--resources-path", "/a", "--resources-path=/b,/c", "-config", "x.yaml", "--config", "y.yaml", "--components-path", "/old"},
			check: func(t *testing.T, o *Options) {
				if !reflect.DeepEqual(o.ResourcesPaths, []string{"/a", "/b", "/c"}) || !reflect.DeepEqual(o.ConfigPaths, []string{"x.yaml", "y.yaml"}) {
					t.Errorf("resources %v config %v", o.ResourcesPaths, o.ConfigPaths)
				}
			},
		},
		{
			name: "components-path alone",
			args: []string{"--components-path", "/old"},
			check: func(t *testing.T, o *Options) {
				if !reflect.DeepEqual(o.ResourcesPaths, []string{"/old"}) {
					t.Errorf("resources %v", o.ResourcesPaths)
				}
			},
		},
		{
			name: "environment",
			args: []string{"--app-id", "a", "--enable-mtls", "--sentry-address", "localhost:50001"},
			env: map[string]string{
				"DAPR_TRUST_ANCHORS": "PEM", "NAMESPACE": "prod", "DAPR_API_TOKEN": "t1", "APP_API_TOKEN": "t2",
				"TANDEM_SENTRY_TOKEN": "join", "DAPR_TRUST_ANCHORS_FILE": "/ca.pem", "DAPR_HOST_IP": "10.0.0.5",
				"DAPR_CONTROLPLANE_NAMESPACE": "dapr-system", "DAPR_CONTROLPLANE_TRUST_DOMAIN": "cluster.local",
				"SENTRY_LOCAL_IDENTITY": "other", "DAPR_SENTRY_TOKEN_FILE": "/tok", "POD_NAME": "p-1",
			},
			check: func(t *testing.T, o *Options) {
				got := []any{string(o.TrustAnchors), o.Namespace, o.MetricsNamespace, o.APIToken, o.AppAPIToken, o.SentryToken, o.TrustAnchorsFile,
					o.HostIP, o.ControlPlaneNamespace, o.ControlPlaneTrustDomain, o.SentryLocalIdentity, o.SentryTokenFile, o.PodName}
				want := []any{"PEM", "prod", "prod", "t1", "t2", "join", "/ca.pem", "10.0.0.5", "dapr-system", "cluster.local", "other", "/tok", "p-1"}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("got %v\nwant %v", got, want)
				}
			},
		},
		{
			name: "flags win over environment",
			args: []string{"--trust-anchors-file", "/flag.pem", "--sentry-token", "flagtok", "--control-plane-namespace", "ns1"},
			env:  map[string]string{"DAPR_TRUST_ANCHORS_FILE": "/env.pem", "TANDEM_SENTRY_TOKEN": "envtok", "DAPR_CONTROLPLANE_NAMESPACE": "ns2"},
			check: func(t *testing.T, o *Options) {
				if o.TrustAnchorsFile != "/flag.pem" || o.SentryToken != "flagtok" || o.ControlPlaneNamespace != "ns1" {
					t.Errorf("got %q %q %q", o.TrustAnchorsFile, o.SentryToken, o.ControlPlaneNamespace)
				}
			},
		},
		{
			name: "unimplemented features are collected, not errors",
			args: []string{"--placement-host-address", "localhost:50005", "--scheduler-host-address", "localhost:50006",
				"--unix-domain-socket", "/tmp", "--wait",
				"--control-plane-address", "op:80", "--actors-service", "x"},
			check: func(t *testing.T, o *Options) {
				want := []string{"--control-plane-address=op:80",
					"--unix-domain-socket=/tmp",
					"--wait=true", "--actors-service=x"}
				if len(o.Ignored) != len(want) {
					t.Fatalf("ignored = %q", o.Ignored)
				}
				for i, w := range want {
					if !strings.HasPrefix(o.Ignored[i], w+" (") {
						t.Errorf("ignored[%d] = %q, want prefix %q", i, o.Ignored[i], w)
					}
				}
				if !reflect.DeepEqual(o.PlacementAddresses, []string{"localhost:50005"}) || !reflect.DeepEqual(o.SchedulerAddresses, []string{"localhost:50006"}) {
					t.Errorf("placement %v scheduler %v", o.PlacementAddresses, o.SchedulerAddresses)
				}
			},
		},
		{
			name: "kubernetes mode",
			args: []string{"--mode", "kubernetes", "--app-id", "a", "--control-plane-address", "op:443", "--sentry-address", "s:443",
				"--config", "appconfig", "--hot-reload-reconcile-interval", "2s"},
			env: map[string]string{"DAPR_TRUST_ANCHORS": "pem", "NAMESPACE": "ns1", "POD_NAME": "pod-1"},
			check: func(t *testing.T, o *Options) {
				if o.Mode != ModeKubernetes || o.ControlPlaneAddress != "op:443" || o.Namespace != "ns1" || o.PodName != "pod-1" ||
					o.HotReloadReconcileInterval != 2*time.Second || len(o.Ignored) != 0 {
					t.Errorf("got %+v", o)
				}
			},
		},
		{
			name: "deprecated size flags and app-ssl",
			args: []string{"--dapr-http-max-request-size", "8", "--dapr-http-read-buffer-size", "16", "--app-ssl"},
			check: func(t *testing.T, o *Options) {
				if o.MaxRequestBodySize != 8<<20 || o.ReadBufferSize != 16<<10 || o.AppProtocol != "https" {
					t.Errorf("body %d buf %d proto %q", o.MaxRequestBodySize, o.ReadBufferSize, o.AppProtocol)
				}
			},
		},
		{
			name: "new size flag wins; negative means default",
			args: []string{"--dapr-http-max-request-size", "8", "--max-body-size", "1M", "--read-buffer-size", "-1"},
			check: func(t *testing.T, o *Options) {
				if o.MaxRequestBodySize != 1_000_000 || o.ReadBufferSize != 4<<10 {
					t.Errorf("body %d buf %d", o.MaxRequestBodySize, o.ReadBufferSize)
				}
			},
		},
		{
			name: "shutdown, listen addresses, api logging off, init endpoints",
			args: []string{"--dapr-graceful-shutdown-seconds", "10", "--dapr-block-shutdown-duration", "30s",
				"--dapr-listen-addresses", "127.0.0.1, [::1]", "--enable-api-logging=false", "--disable-init-endpoints", "Config,subscribe"},
			check: func(t *testing.T, o *Options) {
				if o.GracefulShutdown != 10*time.Second || o.BlockShutdown == nil || *o.BlockShutdown != 30*time.Second ||
					!reflect.DeepEqual(o.ListenAddresses, []string{"127.0.0.1", "::1"}) || o.EnableAPILogging == nil || *o.EnableAPILogging ||
					!reflect.DeepEqual(o.DisableInitEndpoints, []string{"config", "subscribe"}) {
					t.Errorf("got %+v", o)
				}
			},
		},
		{
			name: "app health",
			args: []string{"--enable-app-health-check", "--app-health-check-path", "/ready", "--app-health-probe-interval", "2",
				"--app-health-probe-timeout", "100", "--app-health-threshold", "0"},
			check: func(t *testing.T, o *Options) {
				want := AppHealth{Enabled: true, Path: "/ready", Interval: 2 * time.Second, Timeout: 100 * time.Millisecond, Threshold: 3}
				if o.AppHealth != want {
					t.Errorf("got %+v", o.AppHealth)
				}
			},
		},
		{
			name: "version",
			args: []string{"--version"},
			check: func(t *testing.T, o *Options) {
				if !o.ShowVersion {
					t.Error("ShowVersion not set")
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseFlags(tc.args, envOf(tc.env), nil)
			if err != nil {
				t.Fatalf("ParseFlags: %v", err)
			}
			tc.check(t, o)
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"bad port", []string{"--dapr-http-port", "http"}, []string{`--dapr-http-port: "http" is not a port`}},
		{"port out of range", []string{"--app-id", "a", "--app-port", "70000"}, []string{"--app-port: \"70000\""}},
		{"unknown protocol", []string{"--app-protocol", "soap"}, []string{`--app-protocol: "soap" is not supported; use one of http|grpc|https|grpcs|h2c`}},
		{"app port without id", []string{"--app-port", "3000"}, []string{"--app-id: is required when --app-port is set"}},
		{"port conflict", []string{"--app-id", "a", "--app-port", "3500"}, []string{"--dapr-http-port: 3500 is also the --app-port"}},
		{"mtls needs sentry and anchors", []string{"--app-id", "a", "--enable-mtls"}, []string{"--sentry-address: is required", "--trust-anchors-file: is required"}},
		{"mode", []string{"--mode", "cloud"}, []string{"--mode: \"cloud\" is not valid"}},
		{"kubernetes needs the operator and sentry", []string{"--mode", "kubernetes"},
			[]string{"--control-plane-address: is required with --mode kubernetes", "--sentry-address: is required", "--trust-anchors-file: is required", "--app-id: is required"}},
		{"log level", []string{"--log-level", "loud"}, []string{"--log-level: \"loud\""}},
		{"bad size", []string{"--max-body-size", "lots"}, []string{"--max-body-size: \"lots\""}},
		{"fractional size", []string{"--read-buffer-size", "1.5"}, []string{"not a whole number"}},
		{"init endpoints", []string{"--disable-init-endpoints", "health"}, []string{"--disable-init-endpoints: \"health\""}},
		{"health timeout", []string{"--app-health-probe-interval", "1", "--app-health-probe-timeout", "2000"}, []string{"--app-health-probe-timeout"}},
		{"unknown flag", []string{"--no-such-flag"}, []string{"no-such-flag", "tandemd --help"}},
		{"bad int", []string{"--app-max-concurrency", "many"}, []string{"app-max-concurrency"}},
		{"bool with separate value", []string{"--enable-mtls", "true", "--app-id", "a"}, []string{`unexpected argument "true"`, "--flag=false"}},
		{"several at once", []string{"--dapr-grpc-port", "x", "--metrics-port", "-2"}, []string{"--dapr-grpc-port", "--metrics-port"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFlags(tc.args, nil, nil)
			if err == nil {
				t.Fatalf("want error containing %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseFlagsHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help", "-help"} {
		if _, err := ParseFlags([]string{arg}, nil, nil); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s: err = %v, want flag.ErrHelp", arg, err)
		}
	}
}

func TestDeprecatedFlagsAreLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	if _, err := ParseFlags([]string{"--components-path", "/x", "--app-ssl"}, nil, log); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"flag=--components-path", "flag=--app-ssl"} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("log missing %q:\n%s", w, buf.String())
		}
	}
}

func TestUsageListsEveryFlagOnce(t *testing.T) {
	r := newRegistry(&Options{}, &rawFlags{})
	grouped := map[string]int{}
	for _, g := range r.groups {
		for _, n := range g.names {
			grouped[n]++
		}
	}
	r.fs.VisitAll(func(f *flag.Flag) {
		if grouped[f.Name] != 1 {
			t.Errorf("flag --%s is in %d usage groups, want 1", f.Name, grouped[f.Name])
		}
	})
	var buf bytes.Buffer
	Usage(&buf)
	out := buf.String()
	for _, want := range []string{"Application:", "  --app-id string", "  --enable-mtls\n", "(default 3500)", "Accepted but not implemented", "DAPR_API_TOKEN"} {
		if !strings.Contains(out, want) {
			t.Errorf("usage missing %q", want)
		}
	}
}

// TestDaprdFlagsAccepted is the compatibility list: every flag of daprd
// 1.18 (cmd/daprd/options/options.go, logger and metrics options).
func TestDaprdFlagsAccepted(t *testing.T) {
	daprd := []string{
		"mode", "dapr-http-port", "dapr-listen-addresses", "dapr-public-port", "dapr-public-listen-address", "dapr-grpc-port",
		"dapr-internal-grpc-port", "dapr-internal-grpc-listen-address", "app-port", "profile-port", "app-protocol",
		"components-path", "resources-path", "config", "app-id", "control-plane-address", "sentry-address",
		"control-plane-trust-domain", "control-plane-namespace", "sentry-request-jwt-audiences", "allowed-origins",
		"enable-profiling", "version", "build-info", "wait", "app-max-concurrency", "enable-mtls", "app-ssl",
		"dapr-http-max-request-size", "max-body-size", "dapr-http-read-buffer-size", "read-buffer-size", "unix-domain-socket",
		"dapr-graceful-shutdown-seconds", "dapr-block-shutdown-duration", "enable-api-logging", "disable-builtin-k8s-secret-store",
		"enable-app-health-check", "app-health-check-path", "app-health-probe-interval", "app-health-probe-timeout",
		"app-health-threshold", "app-channel-address", "disable-init-endpoints", "placement-host-address",
		"scheduler-host-address", "scheduler-job-streams", "actors-disseminate-timeout", "hot-reload-reconcile-interval",
		"reminders-service", "actors-service", "log-level", "log-as-json", "metrics-port", "metrics-listen-address", "enable-metrics",
	}
	r := newRegistry(&Options{}, &rawFlags{})
	for _, name := range daprd {
		if r.fs.Lookup(name) == nil {
			t.Errorf("daprd flag --%s is not accepted", name)
		}
	}
}

func TestLogValueHidesSecrets(t *testing.T) {
	o, err := ParseFlags([]string{"--sentry-token", "s3cret"}, envOf(map[string]string{"DAPR_API_TOKEN": "tok3n"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("start", "options", o)
	if strings.Contains(buf.String(), "s3cret") || strings.Contains(buf.String(), "tok3n") {
		t.Errorf("secret logged: %s", buf.String())
	}
	if !strings.Contains(buf.String(), "api_token_set=true") {
		t.Errorf("log: %s", buf.String())
	}
}

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		in   string
		want int
		ok   bool
	}{
		{"4Mi", 4 << 20, true}, {"4Ki", 4096, true}, {"1048576", 1 << 20, true}, {"2k", 2000, true},
		{"0.5Mi", 1 << 19, true}, {"1G", 1_000_000_000, true}, {"-1", -1, true},
		{"", 0, false}, {"Mi", 0, false}, {"4mb", 0, false}, {"10Ei", 0, false}, {"NaN", 0, false},
	}
	for _, tc := range tests {
		got, err := parseQuantity(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseQuantity(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
