// Package kubecore reads the few Kubernetes resources a sidecar needs
// (Secrets, and EndpointSlices to list and watch) through client-go's REST
// client, with a scheme of only the core/v1 and discovery.k8s.io/v1 groups.
//
// client-go's Clientset would do the same, but linking it registers every
// API group of Kubernetes in its scheme when the process starts: about 5 ms
// of every sidecar's start-up, for resources a sidecar never reads.
package kubecore

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Client reads Secrets and EndpointSlices.
type Client struct {
	core, discovery rest.Interface
	params          runtime.ParameterCodec
}

// New returns a Client for the API server of cfg (rate limits, TLS and
// credentials as cfg says, as for a Clientset).
func New(cfg *rest.Config) (*Client, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := discoveryv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	// ListOptions and the other options of meta/v1, as query parameters.
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(scheme)
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	forGroup := func(gv schema.GroupVersion, apiPath string) (rest.Interface, error) {
		c := rest.CopyConfig(cfg)
		c.GroupVersion = &gv
		c.APIPath = apiPath
		c.NegotiatedSerializer = rest.CodecFactoryForGeneratedClient(scheme, codecs).WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		return rest.RESTClientForConfigAndClient(c, httpClient)
	}
	core, err := forGroup(corev1.SchemeGroupVersion, "/api")
	if err != nil {
		return nil, fmt.Errorf("kubernetes client (core/v1): %w", err)
	}
	disc, err := forGroup(discoveryv1.SchemeGroupVersion, "/apis")
	if err != nil {
		return nil, fmt.Errorf("kubernetes client (discovery.k8s.io/v1): %w", err)
	}
	return &Client{core: core, discovery: disc, params: runtime.NewParameterCodec(scheme)}, nil
}

// Secret reads one Secret.
func (c *Client) Secret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	var s corev1.Secret
	err := c.core.Get().Namespace(namespace).Resource("secrets").Name(name).Do(ctx).Into(&s)
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// Secrets lists the Secrets of a namespace.
func (c *Client) Secrets(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.SecretList, error) {
	var l corev1.SecretList
	err := c.core.Get().Namespace(namespace).Resource("secrets").
		VersionedParams(&opts, c.params).Timeout(timeout(opts)).Do(ctx).Into(&l)
	if err != nil {
		return nil, err
	}
	return &l, nil
}

// EndpointSlices lists the EndpointSlices of a namespace ("" for all).
func (c *Client) EndpointSlices(ctx context.Context, namespace string, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error) {
	var l discoveryv1.EndpointSliceList
	err := c.discovery.Get().Namespace(namespace).Resource("endpointslices").
		VersionedParams(&opts, c.params).Timeout(timeout(opts)).Do(ctx).Into(&l)
	if err != nil {
		return nil, err
	}
	return &l, nil
}

// WatchEndpointSlices watches the EndpointSlices of a namespace ("" for
// all).
func (c *Client) WatchEndpointSlices(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.discovery.Get().Namespace(namespace).Resource("endpointslices").
		VersionedParams(&opts, c.params).Timeout(timeout(opts)).Watch(ctx)
}

// timeout is the request timeout that opts ask for (0: none), as
// client-go's typed clients set it.
func timeout(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds != nil {
		return time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return 0
}
