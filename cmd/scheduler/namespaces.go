package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// namespaceClient is the Kubernetes client of the namespace watch:
// --kubeconfig, else the pod's in-cluster configuration.
func namespaceClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration (--kubeconfig or in-cluster): %w", err)
	}
	// JSON, as Dapr's scheduler sends (API server stand-ins such as Dapr's
	// test fake do not speak protobuf).
	cfg.ContentType = "application/json"
	return kubernetes.NewForConfig(cfg)
}

// rewatchDelay spaces the watches of namespaces when one ends, so an API
// server that ends them at once is not called in a tight loop.
const rewatchDelay = 250 * time.Millisecond

// watchNamespaces calls deleted with the name of every namespace that is
// deleted, as Dapr's scheduler drops the jobs and reminders of a deleted
// namespace. Watches that end or fail are started again until ctx ends.
func watchNamespaces(ctx context.Context, cs kubernetes.Interface, deleted func(context.Context, string) error, log *slog.Logger) error {
	for ctx.Err() == nil {
		w, err := cs.CoreV1().Namespaces().Watch(ctx, metav1.ListOptions{})
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("watch namespaces; retrying", "error", err)
			}
		} else {
			for ev := range w.ResultChan() {
				ns, ok := ev.Object.(*corev1.Namespace)
				if ev.Type != watch.Deleted || !ok {
					continue
				}
				if err := deleted(ctx, ns.Name); err != nil {
					log.Error("delete the jobs of a deleted namespace", "namespace", ns.Name, "error", err)
					continue
				}
				log.Info("deleted the jobs of a deleted namespace", "namespace", ns.Name)
			}
			w.Stop()
		}
		select {
		case <-ctx.Done():
		case <-time.After(rewatchDelay):
		}
	}
	return nil
}
