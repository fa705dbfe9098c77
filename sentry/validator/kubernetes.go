package validator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Names Dapr's Kubernetes validator uses.
const (
	// ServiceAccountAudience is the audience of the projected token the
	// injector gives each sidecar (Dapr's LegacyServiceAccountAudience).
	ServiceAccountAudience = "dapr.io/sentry"
	// AnnotationControlPlane marks a control-plane pod and names its
	// service ("operator", "injector", ...): it gets dapr-<service>.
	AnnotationControlPlane = "dapr.io/control-plane"
	annotationAppID        = "dapr.io/app-id"
	annotationConfig       = "dapr.io/config"

	extraPodName = "authentication.kubernetes.io/pod-name"
	extraPodUID  = "authentication.kubernetes.io/pod-uid"
)

var configurationGVK = schema.GroupVersionKind{Group: "dapr.io", Version: "v1alpha1", Kind: "Configuration"}

// KubernetesOptions configure the Kubernetes validator.
type KubernetesOptions struct {
	// TokenReviews reviews the tokens (the API server's authentication/v1).
	TokenReviews authnclient.TokenReviewInterface
	// Reader gets Pods and dapr.io Configurations.
	Reader client.Reader
	// SentryID is sentry's own SPIFFE ID; tokens may be for it or for
	// ServiceAccountAudience, and control-plane services get its trust
	// domain.
	SentryID spiffeid.ID
	// ControlPlaneNamespace is where control-plane pods must run.
	ControlPlaneNamespace string
	Log                   *slog.Logger
}

// Kubernetes admits a request from a pod: its projected ServiceAccount
// token must pass a TokenReview, be bound to a pod that still exists, in the
// namespace the request names, and that pod's dapr.io/app-id must be the
// app ID asked for. The trust domain is the one of the pod's dapr.io/config
// Configuration (accessControl.trustDomain, "public" by default).
type Kubernetes struct {
	o KubernetesOptions
}

var _ Validator = (*Kubernetes)(nil)

// NewKubernetes returns the validator.
func NewKubernetes(o KubernetesOptions) (*Kubernetes, error) {
	if o.TokenReviews == nil || o.Reader == nil || o.SentryID.IsZero() || o.ControlPlaneNamespace == "" {
		return nil, errors.New("kubernetes validator: TokenReviews, Reader, SentryID and ControlPlaneNamespace are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Kubernetes{o: o}, nil
}

// Validate implements Validator.
func (k *Kubernetes) Validate(ctx context.Context, req *sentryv1.SignCertificateRequest) (spiffeid.ID, error) {
	if _, err := RequestedID(req); err != nil {
		return spiffeid.ID{}, err
	}
	if req.GetToken() == "" {
		return spiffeid.ID{}, errors.New("the request carries no Kubernetes service account token (is /var/run/secrets/dapr.io/sentrytoken/token mounted?)")
	}
	user, err := k.review(ctx, req.GetToken())
	if err != nil {
		return spiffeid.ID{}, err
	}
	saNamespace, saName, ok := serviceAccount(user.Username)
	if !ok {
		return spiffeid.ID{}, errors.New("provided token is not a properly structured service account token")
	}
	if saNamespace != req.GetNamespace() {
		return spiffeid.ID{}, fmt.Errorf("namespace mismatch; received namespace: %s, but the token is of namespace %s", req.GetNamespace(), saNamespace)
	}
	podName, podUID := first(user.Extra[extraPodName]), first(user.Extra[extraPodUID])
	if podName == "" {
		// API servers that do not put the pod into the review's user info
		// still bound the token: its claims name the pod (Dapr reads them).
		podName, podUID = podClaim(req.GetToken())
	}
	if podName == "" {
		return spiffeid.ID{}, errors.New("the token is not bound to a pod: use a projected service account token (audience " + ServiceAccountAudience + ")")
	}
	var pod corev1.Pod
	if err := k.o.Reader.Get(ctx, types.NamespacedName{Namespace: saNamespace, Name: podName}, &pod); err != nil {
		k.o.Log.Warn("cannot get the pod of a token", "namespace", saNamespace, "pod", podName, "error", err)
		return spiffeid.ID{}, errors.New("failed to get pod of identity")
	}
	if podUID != "" && string(pod.UID) != podUID {
		return spiffeid.ID{}, fmt.Errorf("the token was issued to an earlier pod named %s/%s", saNamespace, podName)
	}
	if pod.Spec.ServiceAccountName != saName {
		return spiffeid.ID{}, errors.New("pod service account mismatch")
	}
	expected, controlPlane, err := k.expectedID(&pod)
	if err != nil {
		return spiffeid.ID{}, err
	}
	if expected != req.GetId() {
		return spiffeid.ID{}, fmt.Errorf("app-id mismatch. expected: %s, received: %s", expected, req.GetId())
	}
	td := k.o.SentryID.TrustDomain()
	if !controlPlane {
		if td, err = k.trustDomain(ctx, &pod); err != nil {
			return spiffeid.ID{}, err
		}
	}
	return spiffeid.FromSegments(td, "ns", req.GetNamespace(), req.GetId())
}

// review runs the TokenReview; an expired or forged token fails here.
func (k *Kubernetes) review(ctx context.Context, token string) (authnv1.UserInfo, error) {
	r, err := k.o.TokenReviews.Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{
		Token: token, Audiences: []string{ServiceAccountAudience, k.o.SentryID.String()},
	}}, metav1.CreateOptions{})
	switch {
	case err != nil:
		return authnv1.UserInfo{}, fmt.Errorf("token review failed: %w", err)
	case r.Status.Error != "":
		return authnv1.UserInfo{}, fmt.Errorf("invalid token: %s", r.Status.Error)
	case !r.Status.Authenticated:
		return authnv1.UserInfo{}, errors.New("authentication failed: the token is expired, revoked or not for audience " + ServiceAccountAudience)
	}
	return r.Status.User, nil
}

// serviceAccount splits system:serviceaccount:<namespace>:<name>.
func serviceAccount(username string) (namespace, name string, ok bool) {
	parts := strings.Split(username, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" || parts[2] == "" || parts[3] == "" {
		return "", "", false
	}
	return parts[2], parts[3], true
}

func first(v authnv1.ExtraValue) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// expectedID is the app ID the pod may have: dapr-<service> for a
// control-plane pod, else its dapr.io/app-id, else its name (Dapr's rules).
func (k *Kubernetes) expectedID(pod *corev1.Pod) (id string, controlPlane bool, err error) {
	service, isCP := pod.Annotations[AnnotationControlPlane]
	appID, hasAppID := pod.Annotations[annotationAppID]
	if isCP {
		switch {
		case pod.Namespace != k.o.ControlPlaneNamespace:
			return "", false, fmt.Errorf("control plane service in namespace '%s' is not allowed", pod.Namespace)
		case !controlPlaneService(service):
			return "", false, fmt.Errorf("unknown control plane service '%s'", pod.Name)
		case hasAppID:
			return "", false, fmt.Errorf("control plane service '%s' cannot have annotation '%s'", pod.Name, annotationAppID)
		}
		return "dapr-" + service, true, nil
	}
	if !hasAppID {
		appID = pod.Name
	}
	// Tandem goes past Dapr here: in the control plane's namespace the IDs of
	// its services are theirs alone, so an app pod there cannot become
	// dapr-injector (whose certificate serves the webhook) or dapr-operator.
	if service, ok := strings.CutPrefix(appID, "dapr-"); ok && pod.Namespace == k.o.ControlPlaneNamespace && controlPlaneService(service) {
		return "", false, fmt.Errorf("app ID %s is reserved for the control plane's %s, and pod %s is not annotated %s", appID, service, pod.Name, AnnotationControlPlane)
	}
	return appID, false, nil
}

func controlPlaneService(s string) bool {
	switch s {
	case "operator", "placement", "injector", "sentry", "scheduler", "scaler":
		return true
	}
	return false
}

// trustDomain is accessControl.trustDomain of the pod's Configuration, or
// "public".
func (k *Kubernetes) trustDomain(ctx context.Context, pod *corev1.Pod) (spiffeid.TrustDomain, error) {
	public := spiffeid.RequireTrustDomainFromString(DefaultTrustDomain)
	name := pod.Annotations[annotationConfig]
	if name == "" {
		return public, nil
	}
	cfg := &unstructured.Unstructured{}
	cfg.SetGroupVersionKind(configurationGVK)
	if err := k.o.Reader.Get(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: name}, cfg); err != nil {
		k.o.Log.Warn("cannot get the pod's Configuration", "namespace", pod.Namespace, "configuration", name, "error", err)
		return spiffeid.TrustDomain{}, errors.New("failed to get configuration")
	}
	tdName, _, _ := unstructured.NestedString(cfg.Object, "spec", "accessControl", "trustDomain")
	if tdName == "" {
		return public, nil
	}
	td, err := spiffeid.TrustDomainFromString(tdName)
	if err != nil {
		return spiffeid.TrustDomain{}, fmt.Errorf("failed to parse trust domain %q: %w", tdName, err)
	}
	return td, nil
}

// podClaim reads the pod a bound service account token names in its
// "kubernetes.io" claim. The token was verified by the TokenReview before;
// this only decodes its payload.
func podClaim(token string) (name, uid string) {
	// A token in the clear (claims as JSON, as Dapr's parser accepts and its
	// tests send) or a JWS (header.payload.signature).
	payload := []byte(token)
	if !strings.HasPrefix(strings.TrimSpace(token), "{") {
		parts := strings.Split(token, ".")
		if len(parts) != 3 {
			return "", ""
		}
		var err error
		if payload, err = base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "=")); err != nil {
			return "", ""
		}
	}
	var claims struct {
		Kubernetes struct {
			Pod struct {
				Name string `json:"name"`
				UID  string `json:"uid"`
			} `json:"pod"`
		} `json:"kubernetes.io"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return "", ""
	}
	return claims.Kubernetes.Pod.Name, claims.Kubernetes.Pod.UID
}
