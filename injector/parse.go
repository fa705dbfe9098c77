package injector

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// known are Dapr 1.18's pod annotations (pkg/injector/annotations and the
// operator's) that the injector accepts.
var known = []string{
	"enabled", "app-port", "config", "app-protocol", "app-ssl", "app-id", "enable-profiling", "log-level",
	"api-token-secret", "app-token-secret", "log-as-json", "app-max-concurrency", "enable-metrics", "metrics-port",
	"enable-debug", "debug-port", "env", "env-from-secret", "grpc-port", "internal-grpc-port",
	"sidecar-cpu-request", "sidecar-cpu-limit", "sidecar-memory-request", "sidecar-memory-limit",
	"sidecar-listen-addresses",
	"sidecar-liveness-probe-delay-seconds", "sidecar-liveness-probe-timeout-seconds",
	"sidecar-liveness-probe-period-seconds", "sidecar-liveness-probe-threshold",
	"sidecar-readiness-probe-delay-seconds", "sidecar-readiness-probe-timeout-seconds",
	"sidecar-readiness-probe-period-seconds", "sidecar-readiness-probe-threshold",
	"sidecar-image", "sidecar-seccomp-profile-type", "http-max-request-size", "max-body-size",
	"http-read-buffer-size", "read-buffer-size", "graceful-shutdown-seconds", "block-shutdown-duration",
	"enable-api-logging", "unix-domain-socket-path", "volume-mounts", "volume-mounts-rw",
	"disable-builtin-k8s-secret-store", "enable-app-health-check", "app-health-check-path",
	"app-health-probe-interval", "app-health-probe-timeout", "app-health-threshold",
	"placement-host-address", "actors-disseminate-timeout", "scheduler-host-address",
	"pluggable-components", "pluggable-components-sockets-folder", "component-container",
	"inject-pluggable-components", "app-channel-address", "sentry-request-jwt-audiences",
	"sidecar-svc-annotations", "disable-init-endpoints", "enable-native-sidecar",
	// Tandem's own: the app as a Wasm module hosted in the sidecar (the
	// path is in the sidecar container, e.g. from dapr.io/volume-mounts).
	"app-wasm", "app-wasm-memory", "app-wasm-timeout", "app-wasm-instances",
}

// notSupported are Dapr annotations Tandem refuses rather than ignores:
// a pod relying on them would silently not work.
var notSupported = map[string]string{
	"enable-debug":                        "Tandem's sidecar image has no debugger",
	"debug-port":                          "Tandem's sidecar image has no debugger",
	"pluggable-components":                "pluggable components are not supported by Tandem",
	"pluggable-components-sockets-folder": "pluggable components are not supported by Tandem",
	"component-container":                 "pluggable components are not supported by Tandem",
	"inject-pluggable-components":         "pluggable components are not supported by Tandem",
}

// Enabled reports whether the pod asks for a sidecar; anything else is
// never touched.
func Enabled(annotations map[string]string) bool {
	switch strings.ToLower(strings.TrimSpace(annotations[Prefix+"enabled"])) {
	case "true", "yes", "y", "on", "1":
		return true
	}
	return false
}

// Parse reads a pod's annotations. podName is the app ID's fallback (as in
// Dapr). The error names every unknown or malformed dapr.io annotation.
func Parse(annotations map[string]string, podName string) (*Config, error) {
	p := &parser{a: annotations}
	var unknown []string
	for k := range annotations {
		name, ok := strings.CutPrefix(k, Prefix)
		if !ok || name == "control-plane" {
			continue
		}
		if !slices.Contains(known, name) {
			unknown = append(unknown, k)
		} else if why, refused := notSupported[name]; refused && p.a[k] != "" && p.a[k] != "false" {
			p.errs = append(p.errs, fmt.Errorf("annotation %s: %s", k, why))
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		p.errs = append(p.errs, fmt.Errorf("annotation %s is not a Dapr annotation (misspelt?)", k))
	}
	c := &Config{
		Enabled:               p.boolean("enabled", false),
		AppID:                 p.str("app-id", podName),
		AppProtocol:           p.oneOf("app-protocol", "http", "http", "grpc", "https", "grpcs", "h2c"),
		AppSSL:                p.boolean("app-ssl", false),
		Config:                p.str("config", ""),
		LogLevel:              p.oneOf("log-level", "info", "debug", "info", "warn", "error", "fatal"),
		LogAsJSON:             p.boolean("log-as-json", false),
		EnableMetrics:         p.boolean("enable-metrics", true),
		MetricsPort:           p.port("metrics-port", 9090),
		GRPCPort:              p.port("grpc-port", 50001),
		InternalGRPCPort:      p.port("internal-grpc-port", 50002),
		ListenAddresses:       p.str("sidecar-listen-addresses", "[::1],127.0.0.1"),
		CPURequest:            p.quantity("sidecar-cpu-request"),
		CPULimit:              p.quantity("sidecar-cpu-limit"),
		MemoryRequest:         p.quantity("sidecar-memory-request"),
		MemoryLimit:           p.quantity("sidecar-memory-limit"),
		Env:                   p.pairs("env", "="),
		GracefulShutdownSecs:  p.integer("graceful-shutdown-seconds", -1, -1, 3600),
		BlockShutdown:         p.duration("block-shutdown-duration"),
		EnableAPILogging:      p.optBool("enable-api-logging"),
		AppMaxConcurrency:     p.optInt("app-max-concurrency"),
		MaxBodySize:           p.quantityString("max-body-size"),
		ReadBufferSize:        p.quantityString("read-buffer-size"),
		HTTPMaxRequestSize:    p.optInt("http-max-request-size"),
		HTTPReadBufferSize:    p.optInt("http-read-buffer-size"),
		VolumeMounts:          p.pairs("volume-mounts", ":"),
		VolumeMountsRW:        p.pairs("volume-mounts-rw", ":"),
		AppHealthCheck:        p.boolean("enable-app-health-check", false),
		AppHealthCheckPath:    p.str("app-health-check-path", "/healthz"),
		AppHealthInterval:     int32(p.integer("app-health-probe-interval", 5, 1, 3600)),
		AppHealthTimeout:      int32(p.integer("app-health-probe-timeout", 500, 1, 3600000)),
		AppHealthThreshold:    int32(p.integer("app-health-threshold", 3, 1, 1000)),
		PlacementAddress:      p.str("placement-host-address", ""),
		AppChannelAddress:     p.str("app-channel-address", ""),
		Image:                 p.str("sidecar-image", ""),
		NativeSidecar:         p.boolean("enable-native-sidecar", true),
		DisableK8sSecretStore: p.boolean("disable-builtin-k8s-secret-store", false),
		EnableProfiling:       p.boolean("enable-profiling", false),
		APITokenSecret:        p.str("api-token-secret", ""),
		AppTokenSecret:        p.str("app-token-secret", ""),
		EnvFromSecret:         p.str("env-from-secret", ""),
		UnixDomainSocketPath:  p.str("unix-domain-socket-path", ""),
		SeccompProfileType:    p.oneOf("sidecar-seccomp-profile-type", "", "", "runtimedefault", "unconfined", "localhost"),
		DisableInitEndpoints:  p.str("disable-init-endpoints", ""),
		ActorsDisseminate:     p.duration("actors-disseminate-timeout"),
		SentryJWTAudiences:    p.str("sentry-request-jwt-audiences", ""),
		AppWasm:               p.str("app-wasm", ""),
		AppWasmTimeout:        p.duration("app-wasm-timeout"),
		Liveness: Probe{
			Delay: p.probe("sidecar-liveness-probe-delay-seconds", 3), Timeout: p.probe("sidecar-liveness-probe-timeout-seconds", 3),
			Period: p.probe("sidecar-liveness-probe-period-seconds", 6), Threshold: p.probe("sidecar-liveness-probe-threshold", 3),
		},
		Readiness: Probe{
			Delay: p.probe("sidecar-readiness-probe-delay-seconds", 1), Timeout: p.probe("sidecar-readiness-probe-timeout-seconds", 1),
			Period: p.probe("sidecar-readiness-probe-period-seconds", 1), Threshold: p.probe("sidecar-readiness-probe-threshold", 5),
		},
	}
	if _, ok := annotations[Prefix+"app-port"]; ok {
		c.AppPort = p.port("app-port", 0)
	}
	if _, ok := annotations[Prefix+"app-wasm-memory"]; ok {
		c.AppWasmMemory = p.integer("app-wasm-memory", 64, 1, 4096)
	}
	if _, ok := annotations[Prefix+"app-wasm-instances"]; ok {
		c.AppWasmInstances = p.integer("app-wasm-instances", 32, 1, 100000)
	}
	if v, ok := annotations[Prefix+"scheduler-host-address"]; ok {
		c.SchedulerAddress = &v
	}
	if strings.Contains(c.AppID, ".") {
		p.errs = append(p.errs, fmt.Errorf("annotation %sapp-id: %q must not contain a period", Prefix, c.AppID))
	} else if errs := validation.IsDNS1123Label(c.AppID + "-dapr"); len(errs) > 0 {
		// The app's Service is <app-id>-dapr.
		p.errs = append(p.errs, fmt.Errorf("annotation %sapp-id: %q cannot name the Service %s-dapr: %s", Prefix, c.AppID, c.AppID, strings.Join(errs, "; ")))
	}
	for _, m := range append(slices.Clone(c.VolumeMounts), c.VolumeMountsRW...) {
		if !strings.HasPrefix(m[1], "/") {
			p.errs = append(p.errs, fmt.Errorf("volume mount %s:%s: the path must be absolute", m[0], m[1]))
		}
	}
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func (p *parser) probe(key string, def int32) int32 { return int32(p.integer(key, int(def), 0, 3600)) }

// quantityString checks a size such as 4Mi and keeps it as written
// (daprd parses it).
func (p *parser) quantityString(key string) string {
	q := p.quantity(key)
	if q.IsZero() {
		return ""
	}
	return p.str(key, "")
}
