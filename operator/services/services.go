// Package services keeps the headless "<app-id>-dapr" Service of every
// Deployment and StatefulSet whose pod template is annotated
// dapr.io/enabled, as Dapr's operator does, so that sidecars (and daprd's
// DNS name resolution) find each other's pods by app ID.
//
// The Service is owned by its workload (controller reference), so it goes
// when the workload goes. It writes, so it runs only on the leader.
package services

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
)

// Dapr's annotations and the Service's ports (pkg/operator/handlers).
const (
	annotationEnabled          = "dapr.io/enabled"
	annotationAppID            = "dapr.io/app-id"
	annotationEnableMetrics    = "dapr.io/enable-metrics"
	annotationMetricsPort      = "dapr.io/metrics-port"
	annotationGRPCPort         = "dapr.io/grpc-port"
	annotationInternalGRPCPort = "dapr.io/internal-grpc-port"
	annotationSvcAnnotations   = "dapr.io/sidecar-svc-annotations"

	httpPort                = 3500
	defaultGRPCPort         = 50001
	defaultInternalGRPCPort = 50002
	defaultMetricsPort      = 9090
)

// ServiceName is the headless Service of appID.
func ServiceName(appID string) string { return appID + "-dapr" }

func matchLabels(s *metav1.LabelSelector) map[string]string {
	if s == nil {
		return nil
	}
	return s.MatchLabels
}

// Reconciler creates or updates the Service of one kind of workload.
type Reconciler struct {
	client client.Client
	get    func(ctx context.Context, key types.NamespacedName) (client.Object, map[string]string, map[string]string, error)
	log    *slog.Logger
}

// Setup registers the Deployment and StatefulSet controllers with mgr.
func Setup(mgr ctrl.Manager, log *slog.Logger) error {
	c := mgr.GetClient()
	deploy := &Reconciler{client: c, log: log.With("workload", "Deployment"), get: func(ctx context.Context, key types.NamespacedName) (client.Object, map[string]string, map[string]string, error) {
		var d appsv1.Deployment
		err := c.Get(ctx, key, &d)
		return &d, d.Spec.Template.Annotations, matchLabels(d.Spec.Selector), err
	}}
	sts := &Reconciler{client: c, log: log.With("workload", "StatefulSet"), get: func(ctx context.Context, key types.NamespacedName) (client.Object, map[string]string, map[string]string, error) {
		var s appsv1.StatefulSet
		err := c.Get(ctx, key, &s)
		return &s, s.Spec.Template.Annotations, matchLabels(s.Spec.Selector), err
	}}
	if err := ctrl.NewControllerManagedBy(mgr).Named("dapr-service-deployments").For(&appsv1.Deployment{}).Owns(&corev1.Service{}).Complete(deploy); err != nil {
		return fmt.Errorf("deployment controller: %w", err)
	}
	if err := ctrl.NewControllerManagedBy(mgr).Named("dapr-service-statefulsets").For(&appsv1.StatefulSet{}).Owns(&corev1.Service{}).Complete(sts); err != nil {
		return fmt.Errorf("statefulset controller: %w", err)
	}
	return nil
}

// Reconcile implements reconcile.Reconciler.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj, annotations, selector, err := r.get(ctx, req.NamespacedName)
	if apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil // its Service goes with it (owner reference)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if obj.GetDeletionTimestamp() != nil || !strings.EqualFold(annotations[annotationEnabled], "true") {
		return ctrl.Result{}, nil
	}
	appID := annotations[annotationAppID]
	if appID == "" {
		r.log.Warn("no dapr.io/app-id on the pod template; no Service created", "namespace", req.Namespace, "name", req.Name)
		return ctrl.Result{}, nil
	}
	if errs := validation.IsDNS1123Label(ServiceName(appID)); len(errs) > 0 {
		r.log.Warn("app id cannot name a Service; no Service created", "namespace", req.Namespace, "name", req.Name, "app_id", appID, "errors", strings.Join(errs, "; "))
		return ctrl.Result{}, nil
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: ServiceName(appID)}}
	op, err := controllerutil.CreateOrUpdate(ctx, r.client, svc, func() error {
		if owner := metav1.GetControllerOf(svc); owner != nil && owner.UID != obj.GetUID() {
			return fmt.Errorf("service %s/%s belongs to %s %s, not %s", svc.Namespace, svc.Name, owner.Kind, owner.Name, obj.GetName())
		}
		desired := Desired(appID, annotations, selector)
		svc.Labels = mergeInto(svc.Labels, desired.Labels)
		svc.Annotations = mergeInto(svc.Annotations, desired.Annotations)
		svc.Spec.Selector = desired.Spec.Selector
		svc.Spec.ClusterIP = corev1.ClusterIPNone
		svc.Spec.Ports = desired.Spec.Ports
		return controllerutil.SetControllerReference(obj, svc, r.client.Scheme())
	})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("service %s/%s: %w", req.Namespace, ServiceName(appID), err)
	}
	if op != controllerutil.OperationResultNone {
		r.log.Info("dapr service "+string(op), "namespace", req.Namespace, "service", svc.Name, "app_id", appID)
	}
	return ctrl.Result{}, nil
}

func mergeInto(dst, src map[string]string) map[string]string {
	if dst == nil {
		dst = map[string]string{}
	}
	maps.Copy(dst, src)
	return dst
}

// Desired is the Service Dapr's operator creates for appID, from the pod
// template's annotations and the workload's selector.
func Desired(appID string, annotations, selector map[string]string) *corev1.Service {
	metricsPort := intAnnotation(annotations, annotationMetricsPort, defaultMetricsPort)
	grpcPort := intAnnotation(annotations, annotationGRPCPort, defaultGRPCPort)
	internalPort := intAnnotation(annotations, annotationInternalGRPCPort, defaultInternalGRPCPort)
	svcAnnotations := map[string]string{annotationAppID: appID}
	if v := annotations[annotationEnableMetrics]; v == "" || truthy(v) {
		svcAnnotations["prometheus.io/probe"] = "true"
		svcAnnotations["prometheus.io/scrape"] = "true"
		svcAnnotations["prometheus.io/port"] = strconv.Itoa(int(metricsPort))
		svcAnnotations["prometheus.io/path"] = "/"
	}
	for pair := range strings.SplitSeq(annotations[annotationSvcAnnotations], ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		k = strings.TrimSpace(k)
		if _, reserved := svcAnnotations[k]; ok && k != "" && !reserved {
			svcAnnotations[k] = strings.TrimSpace(v)
		}
	}
	port := func(name string, p, target int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Protocol: corev1.ProtocolTCP, Port: p, TargetPort: intstr.FromInt32(target)}
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName(appID), Labels: map[string]string{annotationEnabled: "true"}, Annotations: svcAnnotations},
		Spec: corev1.ServiceSpec{
			Selector:  maps.Clone(selector),
			ClusterIP: corev1.ClusterIPNone,
			Ports: []corev1.ServicePort{
				port("dapr-http", 80, httpPort),
				port("dapr-grpc", grpcPort, grpcPort),
				port("dapr-internal", internalPort, internalPort),
				port("dapr-metrics", metricsPort, metricsPort),
			},
		},
	}
}

func intAnnotation(a map[string]string, key string, def int32) int32 {
	n, err := strconv.ParseInt(a[key], 10, 32)
	if err != nil || n <= 0 || n > 65535 {
		return def
	}
	return int32(n)
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "y", "yes", "true", "on", "1":
		return true
	}
	return false
}
