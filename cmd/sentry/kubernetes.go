package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/kube"
	"github.com/tandemrun/tandem/sentry/validator"
)

// kubeMode is what --mode kubernetes adds: the credentials in the
// dapr-trust-bundle Secret, the Kubernetes validator, and the trust bundle
// ConfigMaps.
type kubeMode struct {
	client client.Client
	cache  cache.Cache
	cs     *kubernetes.Clientset
	store  *kube.SecretStore
	// started is set once the pod cache has started and synced: until
	// then a token's pod may not be readable from it, so /healthz waits
	// for it (as Dapr's sentry reports healthy once its validator is).
	started atomic.Bool
}

// ready reports whether the pod cache serves reads.
func (k *kubeMode) ready() bool { return k.started.Load() }

func newKubeMode(o *Options, namespace string) (*kubeMode, error) {
	var cfg *rest.Config
	var err error
	if o.Kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration (--kubeconfig or in-cluster): %w", err)
	}
	// Token reviews come in bursts when many pods start; the API server's
	// own priority and fairness limits them, not a client-side limiter
	// (a negative QPS turns client-go's off).
	cfg.QPS = -1
	// JSON, as Dapr's sentry sends (client-go now defaults built-in types to
	// protobuf, which API server stand-ins such as Dapr's test fake reject).
	cfg.ContentType = "application/json"
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	pods, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &kubeMode{client: c, cache: pods, cs: cs, store: &kube.SecretStore{Client: c, Namespace: namespace}}, nil
}

func (k *kubeMode) validators(sentryID spiffeid.ID, namespace string, log *slog.Logger) (map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator, error) {
	v, err := validator.NewKubernetes(validator.KubernetesOptions{
		TokenReviews: k.cs.AuthenticationV1().TokenReviews(), Reader: podReader{direct: k.client, cached: k.cache},
		SentryID: sentryID, ControlPlaneNamespace: namespace, Log: log,
	})
	if err != nil {
		return nil, err
	}
	return map[sentryv1.SignCertificateRequest_TokenValidator]validator.Validator{sentryv1.SignCertificateRequest_KUBERNETES: v}, nil
}

// tasks run the pod cache and the publisher, which reloads a changed
// Secret into the CA (onReload) before publishing its anchors (and jwks,
// the public JWT key set, if JWT SVIDs are on).
func (k *kubeMode) tasks(b *ca.Bundle, jwks []byte, caOpts ca.Options, onReload func(*ca.CA), log *slog.Logger) []task.Task {
	p := &kube.Publisher{Client: k.client, Cache: k.cache, Store: k.store, Log: log, JWKS: jwks,
		OnReload: func(nb *ca.Bundle) error {
			c, err := ca.New(nb, caOpts)
			if err != nil {
				return err
			}
			log.Info("trust bundle secret changed; reloaded the issuer credentials",
				"trust_anchors", len(c.TrustAnchors()), "issuer_not_after", c.Issuer().NotAfter.UTC().String())
			onReload(c)
			return nil
		}}
	return []task.Task{
		{Name: "pod cache", Critical: true, Run: k.cache.Start},
		{Name: "pod cache sync", Run: func(ctx context.Context) error {
			if k.cache.WaitForCacheSync(ctx) {
				k.started.Store(true)
			}
			<-ctx.Done()
			return nil
		}},
		{Name: "trust bundle publisher", Critical: true, Run: func(ctx context.Context) error { return p.Run(ctx, b) }},
	}
}

// podReader reads a token's pod from the API server and, when that answers
// 404, from the pod cache (a list and watch, which Dapr's sentry reads
// pods from): the object may not have reached a direct read's server yet,
// and API server stand-ins may serve only lists and watches.
type podReader struct {
	direct client.Reader
	cached client.Reader
}

func (r podReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := r.direct.Get(ctx, key, obj, opts...)
	if apierrors.IsNotFound(err) {
		return r.cached.Get(ctx, key, obj, opts...)
	}
	return err
}

func (r podReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.direct.List(ctx, list, opts...)
}
