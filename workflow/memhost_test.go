package workflow

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tandemrun/tandem/actors"
)

// memHost is an in-memory Host for the engine's tests: actor state in a
// map keyed {actor ID}||{key} (the tests' workflow and activity actor IDs
// never collide), calls run at once (one at a time per actor), reminders
// recorded. It also counts what the last transaction touched, to tell a
// save that rewrites a key from one that leaves it alone.
type memHost struct {
	mu           sync.Mutex
	hosted       map[string]actors.Internal
	state        map[string][]byte
	locks        map[string]*sync.Mutex
	reminders    map[string]actors.ReminderRequest // by {type}/{id}/{name}
	fired        map[string]int                    // the firing under way of a reminder (its seq)
	seq          int
	deleted      []string        // names of the reminders deleted
	touched      map[string]bool // the keys the last transaction wrote or deleted
	ops          int             // operations of every transaction
	historyReads int             // reads of history keys
	// deletedMissing: a transaction deleted a key that was not stored.
	deletedMissing bool
	// remindErr, if set, fails every CreateReminder (a full scheduler);
	// failedReminders counts those calls.
	remindErr       error
	failedReminders int
	// noFire: run-activity reminders due at once are only recorded; else
	// they fire at once, as the scheduler's triggers, until they succeed.
	noFire bool
}

func newMemHost() *memHost {
	return &memHost{hosted: map[string]actors.Internal{}, state: map[string][]byte{}, locks: map[string]*sync.Mutex{}, reminders: map[string]actors.ReminderRequest{}, fired: map[string]int{}}
}

var _ Host = (*memHost)(nil)

func (h *memHost) keys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Sorted(maps.Keys(h.state))
}

func (h *memHost) HostInternal(handlers map[string]actors.Internal) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for t, a := range handlers {
		h.hosted[t] = a
	}
}

func (h *memHost) UnhostInternal(_ context.Context, types ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range types {
		delete(h.hosted, t)
	}
}

func (h *memHost) CallInternal(ctx context.Context, actorType, actorID, method string, data []byte) ([]byte, error) {
	h.mu.Lock()
	a := h.hosted[actorType]
	l := h.locks[actorType+"/"+actorID]
	if l == nil {
		l = new(sync.Mutex)
		h.locks[actorType+"/"+actorID] = l
	}
	h.mu.Unlock()
	if a == nil {
		return nil, errors.New("no host for " + actorType)
	}
	l.Lock()
	defer l.Unlock()
	return a.Invoke(ctx, actorID, method, data)
}

func (h *memHost) GetState(ctx context.Context, actorType, actorID, key string) ([]byte, error) {
	b, _, err := h.LookupState(ctx, actorType, actorID, key)
	return b, err
}

func (h *memHost) LookupState(_ context.Context, _, actorID, key string) ([]byte, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if strings.HasPrefix(key, "history-") {
		h.historyReads++
	}
	b, ok := h.state[actorID+"||"+key]
	return b, ok, nil
}

func (h *memHost) TransactState(_ context.Context, _, actorID string, ops []actors.StateOp) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.touched = map[string]bool{}
	for _, op := range ops {
		k := actorID + "||" + op.Request.Key
		h.touched[k] = true
		h.ops++
		if op.Operation == "delete" {
			if _, ok := h.state[k]; !ok {
				h.deletedMissing = true
			}
			delete(h.state, k)
			continue
		}
		h.state[k] = append([]byte(nil), op.Raw...)
	}
	return nil
}

func (h *memHost) TransactStateDirect(ctx context.Context, actorType, actorID string, ops []actors.StateOp) error {
	return h.TransactState(ctx, actorType, actorID, ops)
}

func (h *memHost) CreateReminder(_ context.Context, req actors.ReminderRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.remindErr != nil {
		h.failedReminders++
		return h.remindErr
	}
	k := req.ActorType + "/" + req.ActorID + "/" + req.Name
	h.reminders[k] = req
	if !h.noFire && req.Name == runActivityReminder && req.DueTime == "0s" {
		h.seq++
		h.fired[k] = h.seq
		go h.fire(k, h.seq, req)
	}
	return nil
}

// fire triggers a reminder due at once, again every 20ms while it fails,
// and deletes it once it succeeds (one shot), until it is replaced or
// deleted.
func (h *memHost) fire(k string, seq int, req actors.ReminderRequest) {
	var data []byte
	if req.Any != nil {
		data, _ = proto.Marshal(req.Any)
	}
	for {
		h.mu.Lock()
		current := h.fired[k] == seq
		_, stored := h.reminders[k]
		h.mu.Unlock()
		if !current || !stored {
			return
		}
		if _, err := h.CallInternal(context.Background(), req.ActorType, req.ActorID, reminderPrefix+req.Name, data); err == nil {
			h.mu.Lock()
			if h.fired[k] == seq {
				delete(h.reminders, k)
			}
			h.mu.Unlock()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *memHost) reminder(actorType, actorID, name string) (actors.ReminderRequest, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.reminders[actorType+"/"+actorID+"/"+name]
	return r, ok
}

func (h *memHost) DeleteReminder(_ context.Context, actorType, actorID, name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deleted = append(h.deleted, name)
	delete(h.reminders, actorType+"/"+actorID+"/"+name)
	return nil
}

func (h *memHost) ListActorIDs(context.Context, string, string, *string, uint32) ([]string, *string, error) {
	return nil, nil, nil
}

// remindFailures is how many CreateReminder calls remindErr failed.
func (h *memHost) remindFailures() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.failedReminders
}
