package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tandemrun/tandem/sentry/ca"
)

// DefaultInterval is how often the Secret is checked for a rotated root or
// issuer.
const DefaultInterval = 10 * time.Second

const annotationEnabled = "dapr.io/enabled"

// PodMetadata is the object whose informer the Publisher needs in its
// cache (only the pods' metadata is kept).
func PodMetadata() client.Object {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "Pod"})
	return m
}

// Publisher keeps the trust bundle ConfigMap of the control plane's
// namespace and of every namespace that has an annotated pod in step with
// the Secret, and hands a changed Secret to
// OnReload (sentry's SetCA) first, so that sentry signs with the new issuer
// before sidecars trust the new root.
type Publisher struct {
	Client client.Client
	// Cache must have (or be able to start) a PodMetadata informer.
	Cache    cache.Cache
	Store    *SecretStore
	Interval time.Duration
	OnReload func(*ca.Bundle) error
	Log      *slog.Logger
	// JWKS, if set, is published beside the anchors under the key KeyJWKS
	// (as Dapr's sentry does with --jwt-enabled), for verifiers that read
	// the ConfigMap rather than the OIDC server.
	JWKS []byte

	mu      sync.Mutex
	anchors []byte
	digest  []byte
	seen    map[string]bool // namespaces with annotated pods
	dirty   map[string]bool
	wake    chan struct{}
}

// Run publishes until ctx ends. b is the bundle sentry started with.
func (p *Publisher) Run(ctx context.Context, b *ca.Bundle) error {
	p.mu.Lock()
	p.anchors, p.digest = b.TrustAnchorsPEM, Digest(b)
	p.seen, p.dirty, p.wake = map[string]bool{}, map[string]bool{}, make(chan struct{}, 1)
	p.mu.Unlock()
	log := p.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// An API server that is not up yet (sentry often starts first) is
	// waited for: sentry keeps signing meanwhile.
	var inf cache.Informer
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 10*time.Second) {
		var err error
		if inf, err = p.Cache.GetInformer(ctx, PodMetadata()); err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("cannot watch pods yet, so trust bundles are not published; retrying (is the API server reachable?)", "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
	onPod := func(obj any) {
		if m, ok := obj.(metav1.Object); ok && strings.EqualFold(m.GetAnnotations()[annotationEnabled], "true") {
			p.mark(m.GetNamespace())
		}
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: onPod, UpdateFunc: func(_, n any) { onPod(n) }})
	if err != nil {
		return fmt.Errorf("watch pods: %w", err)
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()
	// The control plane's own namespace always gets the bundle: the operator
	// and the injector mount it to verify sentry, before any app pod exists.
	if p.Store != nil && p.Store.Namespace != "" {
		p.mark(p.Store.Namespace)
	}
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if err := p.reload(ctx); err != nil {
				log.Warn("cannot reload the trust bundle secret; keeping the current credentials", "error", err)
			}
		case <-p.wake:
		}
		p.publishDirty(ctx, log)
	}
}

func (p *Publisher) mark(namespaces ...string) {
	p.mu.Lock()
	for _, ns := range namespaces {
		p.seen[ns] = true
		p.dirty[ns] = true
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// reload reads the Secret and, when it changed, hands it to OnReload and
// marks every namespace for republishing.
func (p *Publisher) reload(ctx context.Context) error {
	b, ok, err := p.Store.Load(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("the trust bundle secret is gone or empty")
	}
	d := Digest(b)
	p.mu.Lock()
	same := bytes.Equal(d, p.digest)
	p.mu.Unlock()
	if same {
		return nil
	}
	if p.OnReload != nil {
		if err := p.OnReload(b); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.anchors, p.digest = b.TrustAnchorsPEM, d
	all := make([]string, 0, len(p.seen))
	for ns := range p.seen {
		all = append(all, ns)
	}
	p.mu.Unlock()
	p.mark(all...)
	return nil
}

func (p *Publisher) publishDirty(ctx context.Context, log *slog.Logger) {
	p.mu.Lock()
	dirty := make([]string, 0, len(p.dirty))
	for ns := range p.dirty {
		dirty = append(dirty, ns)
	}
	clear(p.dirty)
	anchors := p.anchors
	p.mu.Unlock()
	slices.Sort(dirty)
	for _, ns := range dirty {
		if err := p.publish(ctx, ns, anchors); err != nil {
			log.Warn("cannot publish the trust bundle; retrying", "namespace", ns, "error", err)
			p.mu.Lock()
			p.dirty[ns] = true // retried at the next tick
			p.mu.Unlock()
		}
	}
}

// publish creates or updates the namespace's ConfigMap.
func (p *Publisher) publish(ctx context.Context, namespace string, anchors []byte) error {
	var cm corev1.ConfigMap
	err := p.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: TrustBundleName}, &cm)
	if apierrors.IsNotFound(err) {
		cm = corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: TrustBundleName, Labels: map[string]string{"app.kubernetes.io/managed-by": "tandem-sentry"}},
			Data:       map[string]string{KeyRootCert: string(anchors)},
		}
		if p.JWKS != nil {
			cm.Data[KeyJWKS] = string(p.JWKS)
		}
		return p.Client.Create(ctx, &cm)
	}
	if err != nil {
		return err
	}
	jwks, hasJWKS := cm.Data[KeyJWKS]
	if cm.Data[KeyRootCert] == string(anchors) && hasJWKS == (p.JWKS != nil) && jwks == string(p.JWKS) {
		return nil
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[KeyRootCert] = string(anchors)
	// As Dapr's sentry: the key set is there exactly while JWTs are issued.
	delete(cm.Data, KeyJWKS)
	if p.JWKS != nil {
		cm.Data[KeyJWKS] = string(p.JWKS)
	}
	return p.Client.Update(ctx, &cm)
}
