package services

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tandemrun/tandem/operator/api"
)

func podTemplate(labels, annotations map[string]string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
	}
}

// TestServices: an annotated Deployment and StatefulSet get their headless
// <app-id>-dapr Service, owned by them, with Dapr's ports; an unannotated
// one gets none.
func TestServices(t *testing.T) {
	cfg := kube.Require(t)
	scheme, err := api.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Setup(mgr, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := mgr.Start(ctx); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	defer func() { cancel(); wg.Wait() }()
	k := mgr.GetClient()
	ns := "services"
	if err := k.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "orders"}
	one := int32(1)
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders"},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: podTemplate(labels, map[string]string{"dapr.io/enabled": "true", "dapr.io/app-id": "orders", "dapr.io/grpc-port": "50010",
				"dapr.io/sidecar-svc-annotations": "team=shop"})},
	}
	stsLabels := map[string]string{"app": "ledger"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ledger"},
		Spec: appsv1.StatefulSetSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: stsLabels},
			Template: podTemplate(stsLabels, map[string]string{"dapr.io/enabled": "true", "dapr.io/app-id": "ledger", "dapr.io/enable-metrics": "false"})},
	}
	plainLabels := map[string]string{"app": "plain"}
	plain := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "plain"},
		Spec:       appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: plainLabels}, Template: podTemplate(plainLabels, nil)},
	}
	if err := k.Create(ctx, deploy); err != nil {
		t.Fatal(err)
	}
	if err := k.Create(ctx, sts); err != nil {
		t.Fatal(err)
	}
	if err := k.Create(ctx, plain); err != nil {
		t.Fatal(err)
	}

	wait := func(name string) *corev1.Service {
		t.Helper()
		var svc corev1.Service
		for ctx.Err() == nil {
			if err := mgr.GetAPIReader().Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc); err == nil {
				return &svc
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("service %s never appeared", name)
		return nil
	}
	svc := wait("orders-dapr")
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Spec.Selector["app"] != "orders" {
		t.Errorf("orders-dapr: clusterIP %q selector %v", svc.Spec.ClusterIP, svc.Spec.Selector)
	}
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
	}
	if ports["dapr-http"] != 80 || ports["dapr-grpc"] != 50010 || ports["dapr-internal"] != 50002 || ports["dapr-metrics"] != 9090 {
		t.Errorf("ports %v", ports)
	}
	if svc.Annotations["team"] != "shop" || svc.Annotations["dapr.io/app-id"] != "orders" || svc.Annotations["prometheus.io/scrape"] != "true" {
		t.Errorf("annotations %v", svc.Annotations)
	}
	if owner := metav1.GetControllerOf(svc); owner == nil || owner.Kind != "Deployment" || owner.Name != "orders" {
		t.Errorf("owner %+v", owner)
	}
	ledger := wait("ledger-dapr")
	if owner := metav1.GetControllerOf(ledger); owner == nil || owner.Kind != "StatefulSet" {
		t.Errorf("ledger owner %+v", owner)
	}
	if _, ok := ledger.Annotations["prometheus.io/scrape"]; ok {
		t.Errorf("metrics off but annotations %v", ledger.Annotations)
	}
	var none corev1.Service
	if err := mgr.GetAPIReader().Get(ctx, types.NamespacedName{Namespace: ns, Name: "plain-dapr"}, &none); err == nil {
		t.Error("an unannotated Deployment got a Service")
	}
}
