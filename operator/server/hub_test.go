package server

import (
	"testing"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandemrun/tandem/operator/api/v1alpha1"
)

func scopedComponent(ns string, scopes ...string) *v1alpha1.Component {
	return &v1alpha1.Component{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c"}, Scopes: scopes}
}

// TestForApp: scope changes turn into CREATED and DELETED for the app.
func TestForApp(t *testing.T) {
	const (
		created = operatorv1.ResourceEventType_CREATED
		updated = operatorv1.ResourceEventType_UPDATED
		deleted = operatorv1.ResourceEventType_DELETED
	)
	mine, other, all := scopedComponent("ns", "orders"), scopedComponent("ns", "billing"), scopedComponent("ns")
	for _, tc := range []struct {
		name     string
		typ      operatorv1.ResourceEventType
		old, cur *v1alpha1.Component
		want     operatorv1.ResourceEventType
		sent     bool
	}{
		{"created for everyone", created, nil, all, created, true},
		{"created for another app", created, nil, other, 0, false},
		{"updated in scope", updated, mine, all, updated, true},
		{"enters scope", updated, other, mine, created, true},
		{"leaves scope", updated, mine, other, deleted, true},
		{"stays out of scope", updated, other, other, 0, false},
		{"deleted in scope", deleted, nil, mine, deleted, true},
		{"deleted out of scope", deleted, nil, other, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var old = tc.old
			var ev event
			var ok bool
			if old == nil {
				ev, ok = forApp("orders", tc.typ, nil, tc.cur)
			} else {
				ev, ok = forApp("orders", tc.typ, old, tc.cur)
			}
			if ok != tc.sent || (ok && ev.typ != tc.want) {
				t.Fatalf("forApp = %v %v, want %v %v", ev.typ, ok, tc.want, tc.sent)
			}
		})
	}
}

// TestHubCutsOffSlowStreams: a stream that does not read is closed when
// its buffer is full; the others still get every event.
func TestHubCutsOffSlowStreams(t *testing.T) {
	h := newHub()
	slow, cancelSlow := h.subscribe("components", "ns", "orders")
	defer cancelSlow()
	fast, cancelFast := h.subscribe("components", "ns", "orders")
	defer cancelFast()
	elsewhere, cancelElsewhere := h.subscribe("components", "other", "orders")
	defer cancelElsewhere()
	for i := range subscriberBuffer + 1 {
		h.publish("components", operatorv1.ResourceEventType_CREATED, nil, scopedComponent("ns"))
		if i < subscriberBuffer {
			<-fast.ch
		}
	}
	<-fast.ch
	n := 0
	for range slow.ch {
		n++
	}
	if n != subscriberBuffer {
		t.Fatalf("slow stream got %d events before being closed, want %d", n, subscriberBuffer)
	}
	if h.subscribers("components") != 2 || len(elsewhere.ch) != 0 {
		t.Fatalf("subscribers %d, other namespace got %d", h.subscribers("components"), len(elsewhere.ch))
	}
}
