package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// An API server whose namespace watches each carry one event and end (as
// Dapr's test stand-in's do): the deleted namespace is reported once, the
// added one not at all, and the ended watches are started again.
func TestWatchNamespaces(t *testing.T) {
	var watches atomic.Int32
	events := make(chan []byte, 2)
	for _, ev := range []struct {
		typ, name string
	}{{"ADDED", "kept"}, {"DELETED", "gone"}} {
		obj, _ := json.Marshal(&corev1.Namespace{TypeMeta: metav1.TypeMeta{Kind: "Namespace", APIVersion: "v1"}, ObjectMeta: metav1.ObjectMeta{Name: ev.name}})
		b, _ := json.Marshal(&metav1.WatchEvent{Type: ev.typ, Object: runtime.RawExtension{Raw: obj}})
		events <- b
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/namespaces" || r.URL.Query().Get("watch") != "true" {
			http.NotFound(w, r)
			return
		}
		watches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		select {
		case b := <-events:
			_, _ = w.Write(b)
		default:
		}
	}))
	defer srv.Close()
	cfg := &rest.Config{Host: srv.URL}
	cfg.ContentType = "application/json"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	deleted := make(chan string, 4)
	done := make(chan error, 1)
	go func() {
		done <- watchNamespaces(ctx, cs, func(_ context.Context, ns string) error { deleted <- ns; return nil }, slog.New(slog.DiscardHandler))
	}()
	select {
	case ns := <-deleted:
		if ns != "gone" {
			t.Errorf("deleted %q, want gone", ns)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deleted namespace was not reported")
	}
	deadline := time.Now().Add(5 * time.Second)
	for watches.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if watches.Load() < 3 {
		t.Errorf("%d watches, want the ended ones started again", watches.Load())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case ns := <-deleted:
		t.Errorf("also reported %q", ns)
	default:
	}
}
