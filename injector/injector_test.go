package injector

import (
	"bytes"
	"encoding/json"
	"github.com/prometheus/client_golang/prometheus"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func testOptions() *Options {
	return &Options{
		Image: "ghcr.io/tandemrun/tandemd:test", ImagePullPolicy: corev1.PullIfNotPresent,
		ControlPlaneNamespace: "tandem-system", ControlPlaneTrustDomain: "cluster.local",
		SentryAddress: "dapr-sentry.tandem-system.svc:443", OperatorAddress: "dapr-api.tandem-system.svc:443",
		TrustBundleConfigMap: "dapr-trust-bundle",
	}
}

func testPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "orders-7d9", Namespace: "shop", Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1",
			Env: []corev1.EnvVar{{Name: "DAPR_GRPC_PORT", Value: "1234"}}}}},
	}
}

func sidecarOf(t *testing.T, pod *corev1.Pod) corev1.Container {
	t.Helper()
	for _, c := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		if c.Name == SidecarName {
			return c
		}
	}
	t.Fatal("no sidecar")
	return corev1.Container{}
}

func hasMount(c corev1.Container, m corev1.VolumeMount) bool {
	return slices.ContainsFunc(c.VolumeMounts, func(have corev1.VolumeMount) bool { return reflect.DeepEqual(have, m) })
}

func hasEnv(c corev1.Container, e corev1.EnvVar) bool {
	return slices.ContainsFunc(c.Env, func(have corev1.EnvVar) bool { return reflect.DeepEqual(have, e) })
}

func argValue(args []string, flag string) (string, bool) {
	i := slices.Index(args, flag)
	if i < 0 {
		return "", false
	}
	if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
		return args[i+1], true
	}
	return "", true
}

// TestAnnotations: each annotation reaches the sidecar as daprd's flag,
// environment or container field.
func TestAnnotations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ann   map[string]string
		check func(t *testing.T, sc corev1.Container)
	}{
		{"defaults", nil, func(t *testing.T, sc corev1.Container) {
			for flag, want := range map[string]string{"--app-id": "orders-7d9", "--mode": "kubernetes", "--app-protocol": "http",
				"--log-level": "info", "--dapr-grpc-port": "50001", "--metrics-port": "9090", "--dapr-listen-addresses": "[::1],127.0.0.1",
				"--dapr-public-port": "3501"} {
				if got, _ := argValue(sc.Args, flag); got != want {
					t.Errorf("%s = %q, want %q", flag, got, want)
				}
			}
			if _, ok := argValue(sc.Args, "--app-port"); ok {
				t.Error("--app-port set without dapr.io/app-port")
			}
		}},
		{"wasm app", map[string]string{"dapr.io/app-id": "orders", "dapr.io/app-wasm": "/mnt/app/orders.wasm",
			"dapr.io/app-wasm-memory": "128", "dapr.io/app-wasm-timeout": "5s", "dapr.io/app-wasm-instances": "8"}, func(t *testing.T, sc corev1.Container) {
			for flag, want := range map[string]string{"--app-wasm": "/mnt/app/orders.wasm", "--app-wasm-memory": "128",
				"--app-wasm-timeout": "5s", "--app-wasm-instances": "8"} {
				if got, _ := argValue(sc.Args, flag); got != want {
					t.Errorf("%s = %q, want %q", flag, got, want)
				}
			}
		}},
		{"app", map[string]string{"dapr.io/app-id": "orders", "dapr.io/app-port": "8080", "dapr.io/app-protocol": "grpc",
			"dapr.io/config": "appconfig", "dapr.io/log-level": "debug", "dapr.io/log-as-json": "true",
			"dapr.io/app-max-concurrency": "10", "dapr.io/enable-api-logging": "true", "dapr.io/graceful-shutdown-seconds": "30",
			"dapr.io/sidecar-listen-addresses": "0.0.0.0"}, func(t *testing.T, sc corev1.Container) {
			for flag, want := range map[string]string{"--app-id": "orders", "--app-port": "8080", "--app-protocol": "grpc",
				"--config": "appconfig", "--log-level": "debug", "--app-max-concurrency": "10",
				"--dapr-graceful-shutdown-seconds": "30", "--dapr-listen-addresses": "0.0.0.0"} {
				if got, _ := argValue(sc.Args, flag); got != want {
					t.Errorf("%s = %q, want %q", flag, got, want)
				}
			}
			if !slices.Contains(sc.Args, "--log-as-json") || !slices.Contains(sc.Args, "--enable-api-logging=true") {
				t.Errorf("args %v", sc.Args)
			}
		}},
		{"metrics off", map[string]string{"dapr.io/enable-metrics": "false"}, func(t *testing.T, sc corev1.Container) {
			if !slices.Contains(sc.Args, "--enable-metrics=false") || slices.ContainsFunc(sc.Ports, func(p corev1.ContainerPort) bool { return p.Name == "dapr-metrics" }) {
				t.Errorf("args %v ports %v", sc.Args, sc.Ports)
			}
		}},
		{"resources", map[string]string{"dapr.io/sidecar-cpu-request": "100m", "dapr.io/sidecar-cpu-limit": "1",
			"dapr.io/sidecar-memory-request": "64Mi", "dapr.io/sidecar-memory-limit": "256Mi"}, func(t *testing.T, sc corev1.Container) {
			if sc.Resources.Requests.Cpu().String() != "100m" || sc.Resources.Limits.Memory().String() != "256Mi" ||
				sc.Resources.Requests.Memory().String() != "64Mi" || sc.Resources.Limits.Cpu().String() != "1" {
				t.Errorf("resources %v", sc.Resources)
			}
		}},
		{"env", map[string]string{"dapr.io/env": "A=1, B=two"}, func(t *testing.T, sc corev1.Container) {
			if !hasEnv(sc, corev1.EnvVar{Name: "A", Value: "1"}) || !hasEnv(sc, corev1.EnvVar{Name: "B", Value: "two"}) {
				t.Errorf("env %v", sc.Env)
			}
		}},
		{"health checks", map[string]string{"dapr.io/enable-app-health-check": "true", "dapr.io/app-health-check-path": "/ready",
			"dapr.io/app-health-probe-interval": "3", "dapr.io/app-health-threshold": "2"}, func(t *testing.T, sc corev1.Container) {
			for flag, want := range map[string]string{"--app-health-check-path": "/ready", "--app-health-probe-interval": "3", "--app-health-threshold": "2", "--app-health-probe-timeout": "500"} {
				if got, _ := argValue(sc.Args, flag); got != want {
					t.Errorf("%s = %q, want %q", flag, got, want)
				}
			}
		}},
		{"sidecar probes", map[string]string{"dapr.io/sidecar-liveness-probe-period-seconds": "20", "dapr.io/sidecar-readiness-probe-threshold": "9"}, func(t *testing.T, sc corev1.Container) {
			// The kubelet probes from outside the pod: the public port
			// (every interface), not the loopback-only API port.
			if sc.LivenessProbe.HTTPGet.Port.IntValue() != 3501 || sc.ReadinessProbe.HTTPGet.Port.IntValue() != 3501 {
				t.Errorf("probes on ports %v and %v, want the public port 3501", sc.LivenessProbe.HTTPGet.Port, sc.ReadinessProbe.HTTPGet.Port)
			}
			if sc.LivenessProbe.PeriodSeconds != 20 || sc.ReadinessProbe.FailureThreshold != 9 {
				t.Errorf("probes %+v %+v", sc.LivenessProbe, sc.ReadinessProbe)
			}
		}},
		{"volume mounts", map[string]string{"dapr.io/volume-mounts": "data:/mnt/data", "dapr.io/volume-mounts-rw": "scratch:/tmp/scratch"}, func(t *testing.T, sc corev1.Container) {
			if !hasMount(sc, corev1.VolumeMount{Name: "data", MountPath: "/mnt/data", ReadOnly: true}) ||
				!hasMount(sc, corev1.VolumeMount{Name: "scratch", MountPath: "/tmp/scratch"}) {
				t.Errorf("mounts %v", sc.VolumeMounts)
			}
		}},
		{"image", map[string]string{"dapr.io/sidecar-image": "my/tandemd:2"}, func(t *testing.T, sc corev1.Container) {
			if sc.Image != "my/tandemd:2" {
				t.Errorf("image %q", sc.Image)
			}
		}},
		{"api token", map[string]string{"dapr.io/api-token-secret": "tok"}, func(t *testing.T, sc corev1.Container) {
			if !slices.ContainsFunc(sc.Env, func(e corev1.EnvVar) bool {
				return e.Name == "DAPR_API_TOKEN" && e.ValueFrom.SecretKeyRef.Name == "tok"
			}) {
				t.Errorf("env %v", sc.Env)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ann := map[string]string{"dapr.io/enabled": "true"}
			for k, v := range tc.ann {
				ann[k] = v
			}
			pod := testPod(ann)
			pod.Spec.Volumes = []corev1.Volume{{Name: "data"}, {Name: "scratch"}}
			out, changed, err := testOptions().Mutate(pod)
			if err != nil || !changed {
				t.Fatalf("Mutate: changed %v, %v", changed, err)
			}
			tc.check(t, sidecarOf(t, out))
		})
	}
}

// TestBadAnnotations: an unknown or malformed annotation is an error that
// names it.
func TestBadAnnotations(t *testing.T) {
	for _, tc := range []struct {
		ann  map[string]string
		want string
	}{
		{map[string]string{"dapr.io/app-port": "http"}, "dapr.io/app-port"},
		{map[string]string{"dapr.io/app-port": "70000"}, "dapr.io/app-port"},
		{map[string]string{"dapr.io/app-protocol": "ftp"}, "dapr.io/app-protocol"},
		{map[string]string{"dapr.io/log-as-json": "maybe"}, "dapr.io/log-as-json"},
		{map[string]string{"dapr.io/sidecar-cpu-limit": "lots"}, "dapr.io/sidecar-cpu-limit"},
		{map[string]string{"dapr.io/env": "NOEQUALS"}, "dapr.io/env"},
		{map[string]string{"dapr.io/block-shutdown-duration": "5 minutes"}, "dapr.io/block-shutdown-duration"},
		{map[string]string{"dapr.io/app-id": "Orders_1"}, "dapr.io/app-id"},
		{map[string]string{"dapr.io/app-id": "a.b"}, "dapr.io/app-id"},
		{map[string]string{"dapr.io/appid": "orders"}, "dapr.io/appid"},
		{map[string]string{"dapr.io/enable-debug": "true"}, "dapr.io/enable-debug"},
		{map[string]string{"dapr.io/volume-mounts": "missing:/x"}, "missing"},
		{map[string]string{"dapr.io/volume-mounts": "data:relative"}, "absolute"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			ann := map[string]string{"dapr.io/enabled": "true"}
			for k, v := range tc.ann {
				ann[k] = v
			}
			pod := testPod(ann)
			pod.Spec.Volumes = []corev1.Volume{{Name: "data"}}
			_, _, err := testOptions().Mutate(pod)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Mutate(%v) = %v, want an error naming %s", tc.ann, err, tc.want)
			}
		})
	}
	_, err := Parse(map[string]string{"dapr.io/app-port": "x", "dapr.io/log-level": "loud"}, "p")
	if err == nil || !strings.Contains(err.Error(), "app-port") || !strings.Contains(err.Error(), "log-level") {
		t.Fatalf("two bad annotations: %v, want both named", err)
	}
}

// TestNativeAndClassic: the sidecar is an init container with
// restartPolicy Always unless dapr.io/enable-native-sidecar is false; the
// app gets the ports, keeping its own value.
func TestNativeAndClassic(t *testing.T) {
	pod := testPod(map[string]string{"dapr.io/enabled": "true", "dapr.io/app-id": "orders"})
	pod.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "m"}}
	out, _, err := testOptions().Mutate(pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Spec.InitContainers) != 2 || out.Spec.InitContainers[0].Name != SidecarName ||
		out.Spec.InitContainers[0].RestartPolicy == nil || *out.Spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatalf("native: init containers %+v", out.Spec.InitContainers)
	}
	if len(out.Spec.Containers) != 1 {
		t.Fatalf("native: containers %d", len(out.Spec.Containers))
	}
	app := out.Spec.Containers[0]
	if !hasEnv(app, corev1.EnvVar{Name: "DAPR_HTTP_PORT", Value: "3500"}) || !hasEnv(app, corev1.EnvVar{Name: "DAPR_GRPC_PORT", Value: "1234"}) {
		t.Fatalf("app env %v", app.Env)
	}
	sc := out.Spec.InitContainers[0]
	if !hasMount(sc, corev1.VolumeMount{Name: TokenVolume, MountPath: TokenMountPath, ReadOnly: true}) ||
		!hasEnv(sc, corev1.EnvVar{Name: "DAPR_TRUST_ANCHORS_FILE", Value: TrustMountPath + "/ca.crt"}) {
		t.Fatalf("sidecar mounts %v env %v", sc.VolumeMounts, sc.Env)
	}
	var token *corev1.ServiceAccountTokenProjection
	for _, v := range out.Spec.Volumes {
		if v.Name == TokenVolume {
			token = v.Projected.Sources[0].ServiceAccountToken
		}
	}
	if token == nil || token.Audience != "dapr.io/sentry" {
		t.Fatalf("token volume %+v", token)
	}

	pod.Annotations["dapr.io/enable-native-sidecar"] = "false"
	out, _, err = testOptions().Mutate(pod)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Spec.InitContainers) != 1 || len(out.Spec.Containers) != 2 || out.Spec.Containers[1].Name != SidecarName || out.Spec.Containers[1].RestartPolicy != nil {
		t.Fatalf("classic: init %d containers %+v", len(out.Spec.InitContainers), out.Spec.Containers)
	}

	// The injector's default (NATIVE_SIDECAR_ENABLED=false) applies to pods that do not say; the annotation wins.
	classic := testOptions()
	classic.ClassicSidecarDefault = true
	for value, native := range map[string]bool{"": false, "true": true, "false": false} {
		delete(pod.Annotations, "dapr.io/enable-native-sidecar")
		if value != "" {
			pod.Annotations["dapr.io/enable-native-sidecar"] = value
		}
		out, _, err = classic.Mutate(pod)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(out.Spec.InitContainers) == 2; got != native {
			t.Errorf("classic by default, annotation %q: native %v, want %v", value, got, native)
		}
	}
}

// TestIdempotentAndUntouched: a mutated pod mutated again is unchanged;
// pods without dapr.io/enabled: "true" are never touched, even with bad
// dapr.io annotations.
func TestIdempotentAndUntouched(t *testing.T) {
	o := testOptions()
	once, _, err := o.Mutate(testPod(map[string]string{"dapr.io/enabled": "true"}))
	if err != nil {
		t.Fatal(err)
	}
	twice, changed, err := o.Mutate(once)
	if err != nil || changed || !reflect.DeepEqual(once, twice) {
		t.Fatalf("second mutation: changed %v, %v", changed, err)
	}
	for _, ann := range []map[string]string{nil, {"dapr.io/enabled": "false", "dapr.io/app-port": "bad"}, {"other.io/x": "y"}} {
		pod := testPod(ann)
		out, changed, err := o.Mutate(pod)
		if err != nil || changed || out != pod {
			t.Fatalf("unannotated %v: changed %v, %v", ann, changed, err)
		}
	}
}

func review(t *testing.T, h http.Handler, pod *corev1.Pod) *admissionv1.AdmissionResponse {
	t.Helper()
	return reviewBy(t, h, pod, authenticationv1.UserInfo{Username: "admin", Groups: []string{"system:masters"}})
}

func reviewBy(t *testing.T, h http.Handler, pod *corev1.Pod, user authenticationv1.UserInfo) *admissionv1.AdmissionResponse {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u1", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Operation: admissionv1.Create, Namespace: "shop", Object: runtime.RawExtension{Raw: raw}, UserInfo: user},
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mutate", bytes.NewReader(body)))
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || out.Response.UID != "u1" {
		t.Fatalf("response %s (%v)", rec.Body.Bytes(), err)
	}
	return out.Response
}

// TestWebhook: the handler patches annotated pods, refuses bad ones with
// the annotation named, and allows other pods unchanged.
func TestWebhook(t *testing.T) {
	h := &Handler{Options: testOptions()}
	resp := review(t, h, testPod(map[string]string{"dapr.io/enabled": "true"}))
	if !resp.Allowed || resp.PatchType == nil || !bytes.Contains(resp.Patch, []byte(`"/spec/initContainers"`)) {
		t.Fatalf("annotated: %+v %s", resp, resp.Patch)
	}
	resp = review(t, h, testPod(map[string]string{"dapr.io/enabled": "true", "dapr.io/app-port": "x"}))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "dapr.io/app-port") {
		t.Fatalf("bad annotation: %+v", resp)
	}
	resp = review(t, h, testPod(nil))
	if !resp.Allowed || resp.Patch != nil {
		t.Fatalf("unannotated: %+v", resp)
	}
}

// TestCallers: as Dapr's injector, only pods created by the workload
// controllers, by system:masters, by an allowed service account (exact,
// glob, or by UID) get a sidecar; anyone else's annotated pod is admitted
// unchanged and counted as a failed injection. Unannotated pods are not
// counted.
func TestCallers(t *testing.T) {
	callers, err := NewCallers(append(DefaultAllowedCallers, "team-*:deployer", "ci:bot?"), []string{"uid-42"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := &Handler{Options: testOptions(), Callers: callers, Metrics: NewMetrics(reg)}
	pod := testPod(map[string]string{"dapr.io/enabled": "true", "dapr.io/app-id": "orders"})
	sa := func(ns, name string) authenticationv1.UserInfo {
		return authenticationv1.UserInfo{Username: "system:serviceaccount:" + ns + ":" + name}
	}
	for _, tc := range []struct {
		name   string
		user   authenticationv1.UserInfo
		inject bool
	}{
		{"replicaset controller", sa("kube-system", "replicaset-controller"), true},
		{"job controller", sa("kube-system", "job-controller"), true},
		{"system:masters", authenticationv1.UserInfo{Username: "kubernetes-admin", Groups: []string{"system:authenticated", "system:masters"}}, true},
		{"glob namespace", sa("team-a", "deployer"), true},
		{"question mark", sa("ci", "bot1"), true},
		{"question mark, two characters", sa("ci", "bot12"), false},
		{"by UID", authenticationv1.UserInfo{Username: "someone", UID: "uid-42"}, true},
		{"a controller's name in another namespace", sa("default", "replicaset-controller"), false},
		{"a user", authenticationv1.UserInfo{Username: "jane", Groups: []string{"system:authenticated"}}, false},
		{"another service account", sa("some-ns", "some-sa"), false},
		{"not a service account user", authenticationv1.UserInfo{Username: "kube-system:replicaset-controller"}, false},
	} {
		resp := reviewBy(t, h, pod, tc.user)
		if !resp.Allowed || (len(resp.Patch) > 0) != tc.inject {
			t.Errorf("%s: allowed %v, patched %v; want allowed, patched %v", tc.name, resp.Allowed, len(resp.Patch) > 0, tc.inject)
		}
	}
	if resp := reviewBy(t, h, testPod(nil), sa("some-ns", "some-sa")); !resp.Allowed || resp.Patch != nil {
		t.Errorf("an unannotated pod of anyone: %+v", resp)
	}
	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"dapr_injector_sidecar_injection_requests_total":                              12,
		"dapr_injector_sidecar_injection_succeeded_total,app_id=orders":               6,
		"dapr_injector_sidecar_injection_failed_total,app_id=orders,reason=pod_patch": 5,
	}
	if !maps.Equal(got, want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
	for _, bad := range []string{"nocolon", "a:b:c", ":", "ns:[", "[:sa"} {
		if _, err := NewCallers([]string{bad}, nil); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

// FuzzParse: no annotations make Parse panic, and an accepted set always
// gives an app ID.
func FuzzParse(f *testing.F) {
	f.Add("dapr.io/app-port", "8080", "dapr.io/env", "A=1")
	f.Add("dapr.io/volume-mounts", "a:/b,c", "dapr.io/app-id", "x")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		c, err := Parse(map[string]string{k1: v1, k2: v2}, "pod")
		if err == nil && c.AppID == "" {
			t.Fatal("accepted without an app ID")
		}
	})
}
