package injector

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// Prefix is the prefix of Dapr's annotations.
const Prefix = "dapr.io/"

// Config is a pod's sidecar as its annotations ask for it; the zero value
// of an optional field means "not set".
type Config struct {
	Enabled               bool
	AppID                 string
	AppPort               int32
	AppProtocol           string
	AppSSL                bool
	Config                string
	LogLevel              string
	LogAsJSON             bool
	EnableMetrics         bool
	MetricsPort           int32
	GRPCPort              int32
	InternalGRPCPort      int32
	ListenAddresses       string
	CPURequest            resource.Quantity
	CPULimit              resource.Quantity
	MemoryRequest         resource.Quantity
	MemoryLimit           resource.Quantity
	Env                   [][2]string
	GracefulShutdownSecs  int
	BlockShutdown         string
	EnableAPILogging      *bool
	AppMaxConcurrency     *int
	MaxBodySize           string
	ReadBufferSize        string
	HTTPMaxRequestSize    *int
	HTTPReadBufferSize    *int
	VolumeMounts          [][2]string // name, path (read-only)
	VolumeMountsRW        [][2]string
	AppHealthCheck        bool
	AppHealthCheckPath    string
	AppHealthInterval     int32
	AppHealthTimeout      int32
	AppHealthThreshold    int32
	PlacementAddress      string
	SchedulerAddress      *string
	AppChannelAddress     string
	Image                 string
	NativeSidecar         bool
	DisableK8sSecretStore bool
	EnableProfiling       bool
	APITokenSecret        string
	AppTokenSecret        string
	EnvFromSecret         string
	UnixDomainSocketPath  string
	Liveness, Readiness   Probe
	SeccompProfileType    string
	DisableInitEndpoints  string
	ActorsDisseminate     string
	SentryJWTAudiences    string
	AppWasm               string // --app-wasm: a Wasm module hosted in the sidecar
	AppWasmMemory         int    // 0: tandemd's default
	AppWasmTimeout        string
	AppWasmInstances      int
}

// Probe is a sidecar probe's timing.
type Probe struct{ Delay, Timeout, Period, Threshold int32 }

// parser collects every bad annotation, so one admission error names all.
type parser struct {
	a    map[string]string
	errs []error
}

func (p *parser) bad(key, why string) {
	p.errs = append(p.errs, fmt.Errorf("annotation %s%s: %q %s", Prefix, key, p.a[Prefix+key], why))
}

func (p *parser) str(key, def string) string {
	if v, ok := p.a[Prefix+key]; ok {
		return strings.TrimSpace(v)
	}
	return def
}

func (p *parser) boolean(key string, def bool) bool {
	v, ok := p.a[Prefix+key]
	if !ok {
		return def
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "yes", "y", "on", "1":
		return true
	case "false", "no", "n", "off", "0", "":
		return false
	}
	p.bad(key, "is not a boolean (use \"true\" or \"false\")")
	return def
}

func (p *parser) optBool(key string) *bool {
	if _, ok := p.a[Prefix+key]; !ok {
		return nil
	}
	b := p.boolean(key, false)
	return &b
}

func (p *parser) integer(key string, def, lo, hi int) int {
	v, ok := p.a[Prefix+key]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < lo || n > hi {
		p.bad(key, fmt.Sprintf("is not a whole number from %d to %d", lo, hi))
		return def
	}
	return n
}

func (p *parser) port(key string, def int32) int32 {
	return int32(p.integer(key, int(def), 1, 65535))
}

func (p *parser) optInt(key string) *int {
	if _, ok := p.a[Prefix+key]; !ok {
		return nil
	}
	n := p.integer(key, 0, 0, 1<<31-1)
	return &n
}

func (p *parser) quantity(key string) resource.Quantity {
	v, ok := p.a[Prefix+key]
	if !ok || v == "" {
		return resource.Quantity{}
	}
	q, err := resource.ParseQuantity(strings.TrimSpace(v))
	if err != nil {
		p.bad(key, "is not a resource quantity (like 100m or 256Mi)")
	}
	return q
}

func (p *parser) duration(key string) string {
	v, ok := p.a[Prefix+key]
	if !ok {
		return ""
	}
	if _, err := time.ParseDuration(strings.TrimSpace(v)); err != nil {
		p.bad(key, "is not a duration (like 5s)")
	}
	return strings.TrimSpace(v)
}

func (p *parser) oneOf(key, def string, allowed ...string) string {
	v := strings.ToLower(p.str(key, def))
	if !slices.Contains(allowed, v) {
		p.bad(key, "must be one of "+strings.Join(allowed, ", "))
		return def
	}
	return v
}

// pairs parses "a=b,c=d" (env) or "name:path,..." (volume mounts).
func (p *parser) pairs(key, sep string) [][2]string {
	v := p.str(key, "")
	if v == "" {
		return nil
	}
	var out [][2]string
	for item := range strings.SplitSeq(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, val, ok := strings.Cut(item, sep)
		k, val = strings.TrimSpace(k), strings.TrimSpace(val)
		if !ok || k == "" {
			p.bad(key, fmt.Sprintf("item %q is not of the form name%svalue", item, sep))
			continue
		}
		out = append(out, [2]string{k, val})
	}
	return out
}
