package injector

import (
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Names the sidecar and its volumes get in the pod (Dapr's, so tools that
// look for "daprd" find it).
const (
	SidecarName       = "daprd"
	TokenVolume       = "dapr-identity-token"
	TrustBundleVolume = "dapr-trust-bundle"
	TokenMountPath    = "/var/run/secrets/dapr.io/sentrytoken"
	TrustMountPath    = "/var/run/secrets/dapr.io/tls"
	TokenAudience     = "dapr.io/sentry"
	sidecarHTTPPort   = 3500
	// sidecarPublicPort is daprd's public health and metadata server, which
	// listens on every interface (the API ports listen on loopback): the
	// kubelet's probes and the KEDA scaler reach the sidecar there, as
	// Dapr's injector points them.
	sidecarPublicPort = 3501
	tokenTTLSeconds   = 7200
)

// Options are the injector's settings, the same for every pod.
type Options struct {
	Image           string
	ImagePullPolicy corev1.PullPolicy
	// ControlPlaneNamespace and ControlPlaneTrustDomain locate sentry's
	// identity; the addresses are the control-plane Services.
	ControlPlaneNamespace   string
	ControlPlaneTrustDomain string
	SentryAddress           string
	OperatorAddress         string
	PlacementAddress        string
	SchedulerAddress        string
	// TrustBundleConfigMap is the ConfigMap sentry publishes in every
	// namespace (key ca.crt).
	TrustBundleConfigMap string
	// ClassicSidecarDefault injects a classic sidecar container into pods
	// without the enable-native-sidecar annotation (the chart's
	// injector.nativeSidecar: false, NATIVE_SIDECAR_ENABLED=false).
	ClassicSidecarDefault bool
}

// sidecar builds the sidecar container for c.
func (o *Options) sidecar(c *Config) corev1.Container {
	image := o.Image
	if c.Image != "" {
		image = c.Image
	}
	ports := []corev1.ContainerPort{
		{Name: "dapr-http", ContainerPort: sidecarHTTPPort, Protocol: corev1.ProtocolTCP},
		{Name: "dapr-grpc", ContainerPort: c.GRPCPort, Protocol: corev1.ProtocolTCP},
		{Name: "dapr-internal", ContainerPort: c.InternalGRPCPort, Protocol: corev1.ProtocolTCP},
	}
	if c.EnableMetrics {
		ports = append(ports, corev1.ContainerPort{Name: "dapr-metrics", ContainerPort: c.MetricsPort, Protocol: corev1.ProtocolTCP})
	}
	health := func(path string, p Probe) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:        corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(sidecarPublicPort)}},
			InitialDelaySeconds: p.Delay, TimeoutSeconds: p.Timeout, PeriodSeconds: p.Period, FailureThreshold: p.Threshold,
		}
	}
	ctr := corev1.Container{
		Name:            SidecarName,
		Image:           image,
		ImagePullPolicy: o.ImagePullPolicy,
		Args:            o.args(c),
		Env:             o.env(c),
		Ports:           ports,
		VolumeMounts:    mounts(c),
		LivenessProbe:   health("/v1.0/healthz", c.Liveness),
		ReadinessProbe:  health("/v1.0/healthz", c.Readiness),
		Resources:       resources(c),
		SecurityContext: securityContext(c),
	}
	if c.EnvFromSecret != "" {
		ctr.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: c.EnvFromSecret}}}}
	}
	return ctr
}

// args are daprd's flags, which tandemd accepts.
func (o *Options) args(c *Config) []string {
	itoa := func(n int32) string { return strconv.Itoa(int(n)) }
	a := []string{
		"--mode", "kubernetes",
		"--dapr-http-port", itoa(sidecarHTTPPort),
		"--dapr-grpc-port", itoa(c.GRPCPort),
		"--dapr-internal-grpc-port", itoa(c.InternalGRPCPort),
		"--dapr-listen-addresses", c.ListenAddresses,
		"--dapr-public-port", itoa(sidecarPublicPort),
		"--app-id", c.AppID,
		"--app-protocol", c.AppProtocol,
		"--log-level", c.LogLevel,
		"--dapr-graceful-shutdown-seconds", strconv.Itoa(c.GracefulShutdownSecs),
		"--control-plane-address", o.OperatorAddress,
		"--sentry-address", o.SentryAddress,
		"--enable-mtls",
	}
	add := func(cond bool, flags ...string) {
		if cond {
			a = append(a, flags...)
		}
	}
	add(c.AppPort > 0, "--app-port", itoa(c.AppPort))
	add(c.EnableMetrics, "--enable-metrics", "--metrics-port", itoa(c.MetricsPort))
	add(!c.EnableMetrics, "--enable-metrics=false")
	add(c.Config != "", "--config", c.Config)
	add(c.AppChannelAddress != "", "--app-channel-address", c.AppChannelAddress)
	placement := c.PlacementAddress
	if placement == "" {
		placement = o.PlacementAddress
	}
	add(placement != "", "--placement-host-address", placement)
	scheduler := o.SchedulerAddress
	if c.SchedulerAddress != nil {
		scheduler = *c.SchedulerAddress
	}
	add(scheduler != "", "--scheduler-host-address", scheduler)
	add(c.EnableAPILogging != nil, "--enable-api-logging="+strconv.FormatBool(c.EnableAPILogging != nil && *c.EnableAPILogging))
	add(c.DisableK8sSecretStore, "--disable-builtin-k8s-secret-store")
	add(c.AppHealthCheck, "--enable-app-health-check", "--app-health-check-path", c.AppHealthCheckPath,
		"--app-health-probe-interval", itoa(c.AppHealthInterval), "--app-health-probe-timeout", itoa(c.AppHealthTimeout),
		"--app-health-threshold", itoa(c.AppHealthThreshold))
	add(c.LogAsJSON, "--log-as-json")
	add(c.EnableProfiling, "--enable-profiling")
	add(c.AppSSL, "--app-ssl")
	if c.AppMaxConcurrency != nil {
		a = append(a, "--app-max-concurrency", strconv.Itoa(*c.AppMaxConcurrency))
	}
	if c.HTTPMaxRequestSize != nil {
		a = append(a, "--dapr-http-max-request-size", strconv.Itoa(*c.HTTPMaxRequestSize))
	}
	if c.HTTPReadBufferSize != nil {
		a = append(a, "--dapr-http-read-buffer-size", strconv.Itoa(*c.HTTPReadBufferSize))
	}
	add(c.MaxBodySize != "", "--max-body-size", c.MaxBodySize)
	add(c.ReadBufferSize != "", "--read-buffer-size", c.ReadBufferSize)
	add(c.BlockShutdown != "", "--dapr-block-shutdown-duration", c.BlockShutdown)
	add(c.ActorsDisseminate != "", "--actors-disseminate-timeout", c.ActorsDisseminate)
	add(c.DisableInitEndpoints != "", "--disable-init-endpoints", c.DisableInitEndpoints)
	add(c.SentryJWTAudiences != "", "--sentry-request-jwt-audiences", c.SentryJWTAudiences)
	add(c.AppWasm != "", "--app-wasm", c.AppWasm)
	add(c.AppWasmMemory > 0, "--app-wasm-memory", strconv.Itoa(c.AppWasmMemory))
	add(c.AppWasmTimeout != "", "--app-wasm-timeout", c.AppWasmTimeout)
	add(c.AppWasmInstances > 0, "--app-wasm-instances", strconv.Itoa(c.AppWasmInstances))
	return a
}

func (o *Options) env(c *Config) []corev1.EnvVar {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	env := []corev1.EnvVar{
		field("NAMESPACE", "metadata.namespace"),
		field("POD_NAME", "metadata.name"),
		{Name: "DAPR_CONTROLPLANE_NAMESPACE", Value: o.ControlPlaneNamespace},
		{Name: "DAPR_CONTROLPLANE_TRUST_DOMAIN", Value: o.ControlPlaneTrustDomain},
		// A file, not DAPR_TRUST_ANCHORS: the sidecar watches it, so a
		// rotated root arrives without a restart.
		{Name: "DAPR_TRUST_ANCHORS_FILE", Value: TrustMountPath + "/ca.crt"},
	}
	secret := func(name, secretName string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: secretName}, Key: "token"}}}
	}
	if c.APITokenSecret != "" {
		env = append(env, secret("DAPR_API_TOKEN", c.APITokenSecret))
	}
	if c.AppTokenSecret != "" {
		env = append(env, secret("APP_API_TOKEN", c.AppTokenSecret))
	}
	for _, kv := range c.Env {
		env = append(env, corev1.EnvVar{Name: kv[0], Value: kv[1]})
	}
	return env
}

func mounts(c *Config) []corev1.VolumeMount {
	m := []corev1.VolumeMount{
		{Name: TokenVolume, MountPath: TokenMountPath, ReadOnly: true},
		{Name: TrustBundleVolume, MountPath: TrustMountPath, ReadOnly: true},
	}
	for _, v := range c.VolumeMounts {
		m = append(m, corev1.VolumeMount{Name: v[0], MountPath: v[1], ReadOnly: true})
	}
	for _, v := range c.VolumeMountsRW {
		m = append(m, corev1.VolumeMount{Name: v[0], MountPath: v[1]})
	}
	return m
}

func resources(c *Config) corev1.ResourceRequirements {
	var r corev1.ResourceRequirements
	set := func(list *corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if q.IsZero() {
			return
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[name] = q
	}
	set(&r.Requests, corev1.ResourceCPU, c.CPURequest)
	set(&r.Requests, corev1.ResourceMemory, c.MemoryRequest)
	set(&r.Limits, corev1.ResourceCPU, c.CPULimit)
	set(&r.Limits, corev1.ResourceMemory, c.MemoryLimit)
	return r
}

func securityContext(c *Config) *corev1.SecurityContext {
	no, yes := false, true
	sc := &corev1.SecurityContext{
		AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes, RunAsNonRoot: &yes,
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	switch c.SeccompProfileType {
	case "runtimedefault":
		sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	case "unconfined":
		sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
	case "localhost":
		sc.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost}
	}
	return sc
}

// volumes are the token and trust bundle volumes the sidecar mounts.
func (o *Options) volumes() []corev1.Volume {
	ttl := int64(tokenTTLSeconds)
	return []corev1.Volume{
		{Name: TokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: TokenAudience, ExpirationSeconds: &ttl, Path: "token",
			}}},
		}}},
		{Name: TrustBundleVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: o.TrustBundleConfigMap},
		}}},
	}
}

// appEnv adds DAPR_HTTP_PORT and DAPR_GRPC_PORT to an app container,
// keeping values the app set itself.
func appEnv(ctr *corev1.Container, c *Config) {
	for _, e := range []corev1.EnvVar{
		{Name: "DAPR_HTTP_PORT", Value: strconv.Itoa(sidecarHTTPPort)},
		{Name: "DAPR_GRPC_PORT", Value: strconv.Itoa(int(c.GRPCPort))},
	} {
		if !slices.ContainsFunc(ctr.Env, func(have corev1.EnvVar) bool { return have.Name == e.Name }) {
			ctr.Env = append(ctr.Env, e)
		}
	}
}
