package server

import (
	"sync"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// subscriberBuffer is how many events a sidecar's stream may have pending
// before it is cut off.
const subscriberBuffer = 256

// event is one change as one sidecar sees it.
type event struct {
	typ operatorv1.ResourceEventType
	obj client.Object
}

// subscriber is one open update stream.
type subscriber struct {
	namespace, appID string
	// ch is closed by the hub when the stream fell behind.
	ch chan event
}

// hub fans the informers' changes out to the open update streams.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscriber]struct{} // by kind name
}

func newHub() *hub { return &hub{subs: map[string]map[*subscriber]struct{}{}} }

// subscribe opens a stream of kind's changes in namespace for appID; call
// cancel when done.
func (h *hub) subscribe(kindName, namespace, appID string) (s *subscriber, cancel func()) {
	s = &subscriber{namespace: namespace, appID: appID, ch: make(chan event, subscriberBuffer)}
	h.mu.Lock()
	if h.subs[kindName] == nil {
		h.subs[kindName] = map[*subscriber]struct{}{}
	}
	h.subs[kindName][s] = struct{}{}
	h.mu.Unlock()
	return s, func() {
		h.mu.Lock()
		delete(h.subs[kindName], s)
		h.mu.Unlock()
	}
}

// subscribers returns how many streams of kind are open.
func (h *hub) subscribers(kindName string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[kindName])
}

// publish delivers a change of kind: old is nil for a creation, cur is the
// object as it now is (as it was, for a deletion).
func (h *hub) publish(kindName string, typ operatorv1.ResourceEventType, old, cur client.Object) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[kindName] {
		if cur.GetNamespace() != s.namespace {
			continue
		}
		ev, ok := forApp(s.appID, typ, old, cur)
		if !ok {
			continue
		}
		select {
		case s.ch <- ev:
		default:
			// Never block the informer on one slow sidecar: it reconnects
			// and lists again.
			close(s.ch)
			delete(h.subs[kindName], s)
		}
	}
}

// forApp turns a change into what the app sees, considering scopes on both
// sides of it: a resource that leaves the app's scope is DELETED for it,
// one that enters it is CREATED (as Dapr's operator does).
func forApp(appID string, typ operatorv1.ResourceEventType, old, cur client.Object) (event, bool) {
	inOld := old != nil && appliesTo(old, appID)
	inNew := appliesTo(cur, appID)
	switch {
	case typ == operatorv1.ResourceEventType_DELETED:
		return event{typ: typ, obj: cur}, inNew
	case !inNew && !inOld:
		return event{}, false
	case !inNew:
		return event{typ: operatorv1.ResourceEventType_DELETED, obj: old}, true
	case !inOld && typ == operatorv1.ResourceEventType_UPDATED:
		return event{typ: operatorv1.ResourceEventType_CREATED, obj: cur}, true
	}
	return event{typ: typ, obj: cur}, true
}
