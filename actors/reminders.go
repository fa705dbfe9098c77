package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/actors/schedule"
	"github.com/tandemrun/tandem/components/state"
)

// Reminder errors callers branch on.
var (
	// ErrReminderNotHosted: reminders need the type hosted by this app.
	ErrReminderNotHosted = errors.New("operations on actor reminders are only possible on hosted actor types")
	// ErrReminderNotFound: no such reminder.
	ErrReminderNotFound = errors.New("actor reminder not found")
	// ErrReminderExists: a reminder created with overwrite false exists.
	ErrReminderExists = errors.New("actor reminder already exists")
)

// ReminderRequest is the body of POST /v1.0/actors/{type}/{id}/reminders/{name}.
type ReminderRequest struct {
	Name      string          `json:"-"`
	ActorType string          `json:"-"`
	ActorID   string          `json:"-"`
	DueTime   string          `json:"dueTime"`
	Period    string          `json:"period"`
	TTL       string          `json:"ttl"`
	Data      json.RawMessage `json:"data"`
	// Any, when set, is the data of an internal actor's reminder (the
	// workflow engine's): a protobuf message, kept and handed back as it
	// is, as daprd keeps its workflow reminders; Data is then unused.
	Any *anypb.Any `json:"-"`
	// Overwrite false refuses to replace a reminder (ErrReminderExists);
	// unset replaces, as daprd.
	Overwrite *bool `json:"overwrite"`
	// FailurePolicy is how the scheduler retries a reminder the app fails.
	FailurePolicy *commonv1.JobFailurePolicy `json:"-"`
	// ConcurrencyKey, if set, names the reminder's target for the
	// scheduler's concurrency limits by name (the workflow engine's: a
	// workflow's or an activity's name), as daprd's reminders carry it;
	// the state store ignores it.
	ConcurrencyKey *string `json:"-"`
}

// ValidName checks a reminder's (or timer's) name or actor ID as daprd
// does: no '#', '?', '/', backslash, control characters, and not "." or "..";
// both become parts of a path.
func ValidName(what, name string) error {
	if name == "" {
		return &FieldError{Field: what, Err: errors.New("must not be empty")}
	}
	if i := strings.IndexAny(name, "#?/\\"); i >= 0 {
		return &FieldError{Field: what, Err: fmt.Errorf("contains forbidden character %q: %q", name[i], name)}
	}
	for i := range len(name) {
		if b := name[i]; b < 0x20 || b == 0x7f {
			return &FieldError{Field: what, Err: fmt.Errorf("contains control character at position %d: %q", i, name)}
		}
	}
	if name == "." || name == ".." {
		return &FieldError{Field: what, Err: fmt.Errorf("is a path traversal sequence: %q", name)}
	}
	return nil
}

// storedReminder is one reminder in the actor state store. Reminders of a
// type live in one JSON array under "actors||{type}", the layout of Dapr
// 1.14 and earlier without partitions, plus Tandem's firing progress
// (nextFireTime, repetitionsLeft) so that a restart resumes where it was.
type storedReminder struct {
	ActorID         string          `json:"actorID"`
	ActorType       string          `json:"actorType"`
	Name            string          `json:"name"`
	Data            json.RawMessage `json:"data,omitempty"`
	Period          string          `json:"period,omitempty"`
	DueTime         string          `json:"dueTime,omitempty"`
	RegisteredTime  string          `json:"registeredTime,omitempty"`
	ExpirationTime  string          `json:"expirationTime,omitempty"`
	NextFireTime    time.Time       `json:"nextFireTime"`
	RepetitionsLeft int             `json:"repetitionsLeft"`
}

func (s storedReminder) id() string { return s.ActorType + "||" + s.ActorID + "||" + s.Name }

func remindersKey(actorType string) string { return "actors||" + actorType }

// reminderRunner is a reminder waiting to fire on this host.
type reminderRunner struct {
	cancel     context.CancelFunc
	registered string            // the registration it fires (a re-created reminder restarts)
	token      *struct{ _ byte } // tells this runner from a later one for the same reminder
}

// reminders keeps this host's firing goroutines in step with the store.
type reminders struct {
	mu      sync.Mutex
	running map[string]reminderRunner
	wake    chan struct{}
	wg      sync.WaitGroup
	writer  reminderWriter
	ctx     context.Context // runReminders's, for runners started after a write; nil before
}

// loadReminders reads every reminder of a type.
func (r *Runtime) loadReminders(ctx context.Context, st state.Store, actorType string) ([]storedReminder, error) {
	set, err := readReminderSet(ctx, st, actorType)
	if err != nil {
		return nil, err
	}
	return set.all(), nil
}

// updateReminders applies change to a type's reminders (batched with the
// other writes of this host, retried when another host wrote them
// meanwhile), then brings this host's firing in step with what it wrote.
func (r *Runtime) updateReminders(ctx context.Context, actorType string, change reminderChange) error {
	st, err := r.store()
	if err != nil {
		return err
	}
	tc, _ := r.typeConfig(actorType)
	return r.rem.writer.update(ctx, st, actorType, tc.RemindersPartitions, change, r.remindersWritten)
}

// CreateReminder stores (or replaces) a reminder of a type hosted here.
func (r *Runtime) CreateReminder(ctx context.Context, req ReminderRequest) error {
	if r == nil || r.placement == nil {
		return ErrNoPlacement
	}
	if !r.Hosts(ctx, req.ActorType) {
		return ErrReminderNotHosted
	}
	if err := ValidName("name", req.Name); err != nil {
		return err
	}
	if err := ValidName("actor ID", req.ActorID); err != nil {
		return err
	}
	return r.remStore.Create(ctx, req)
}

// stateReminders keeps reminders in the actor state store and fires them
// from this host (runReminders): Tandem's way without a scheduler. With
// no actor state store either, reminders fail as daprd's do without a
// scheduler (errSchedulerDisabled).
type stateReminders struct{ r *Runtime }

// errSchedulerDisabled is daprd's answer for reminders without a scheduler.
var errSchedulerDisabled = errors.New("scheduler clients are disabled")

// usable is errSchedulerDisabled when there is no actor state store.
func (s stateReminders) usable() error {
	if _, err := s.r.store(); errors.Is(err, ErrNoStateStore) {
		return errSchedulerDisabled
	}
	return nil
}

func (s stateReminders) Create(ctx context.Context, req ReminderRequest) error {
	r := s.r
	if err := s.usable(); err != nil {
		return err
	}
	now := time.Now()
	due, err := schedule.ParseTime(req.DueTime, now)
	if err != nil {
		return &FieldError{Field: "dueTime", Err: err}
	}
	period, err := schedule.ParsePeriod(req.Period)
	if err != nil {
		return &FieldError{Field: "period", Err: err}
	}
	data, err := req.storedData()
	if err != nil {
		return fmt.Errorf("reminder %s data: %w", req.Name, err)
	}
	rec := storedReminder{
		ActorID: req.ActorID, ActorType: req.ActorType, Name: req.Name, Data: data, Period: req.Period,
		DueTime: req.DueTime, RegisteredTime: now.UTC().Format(time.RFC3339Nano), NextFireTime: due.UTC(), RepetitionsLeft: period.Repeats,
	}
	if req.TTL != "" {
		exp, err := schedule.ParseTime(req.TTL, due)
		if err != nil {
			return &FieldError{Field: "ttl", Err: err}
		}
		rec.ExpirationTime = exp.UTC().Format(time.RFC3339Nano)
	}
	return r.updateReminders(ctx, req.ActorType, reminderChange{ActorID: req.ActorID, Name: req.Name, Apply: func(list []storedReminder) ([]storedReminder, error) {
		if req.Overwrite != nil && !*req.Overwrite && slices.ContainsFunc(list, func(s storedReminder) bool { return s.id() == rec.id() }) {
			return nil, fmt.Errorf("%w: %s", ErrReminderExists, req.Name)
		}
		list = slices.DeleteFunc(list, func(s storedReminder) bool { return s.id() == rec.id() })
		return append(list, rec), nil
	}})
}

// Reminder is a stored reminder as the actor API reads it back.
type Reminder struct {
	Name, ActorType, ActorID string
	// Data is what the reminder was created with: a BytesValue of its
	// JSON, or an internal actor's message (ReminderRequest.Any).
	Data            *anypb.Any
	DueTime, Period string
	// TTL is the expiry (RFC 3339), or "".
	TTL string
}

// GetReminder returns a reminder of a type hosted here.
func (r *Runtime) GetReminder(ctx context.Context, actorType, actorID, name string) (*Reminder, error) {
	if r == nil || r.placement == nil {
		return nil, ErrNoPlacement
	}
	if !r.Hosts(ctx, actorType) {
		return nil, ErrReminderNotHosted
	}
	return r.remStore.Get(ctx, actorType, actorID, name)
}

// ListReminders returns the reminders of a type hosted here, of one actor
// when actorID is set.
func (r *Runtime) ListReminders(ctx context.Context, actorType string, actorID *string) ([]Reminder, error) {
	if r == nil || r.placement == nil {
		return nil, ErrNoPlacement
	}
	if !r.Hosts(ctx, actorType) {
		return nil, ErrReminderNotHosted
	}
	return r.remStore.List(ctx, actorType, actorID)
}

// DeleteRemindersByActor removes the reminders ListReminders would return.
func (r *Runtime) DeleteRemindersByActor(ctx context.Context, actorType string, actorID *string) error {
	if r == nil || r.placement == nil {
		return ErrNoPlacement
	}
	if !r.Hosts(ctx, actorType) {
		return ErrReminderNotHosted
	}
	return r.remStore.DeleteByActor(ctx, actorType, actorID)
}

func (s storedReminder) reminder() Reminder {
	return Reminder{Name: s.Name, ActorType: s.ActorType, ActorID: s.ActorID, Data: s.dataAny(), DueTime: s.DueTime, Period: s.Period, TTL: s.ExpirationTime}
}

func (s stateReminders) Get(ctx context.Context, actorType, actorID, name string) (*Reminder, error) {
	r := s.r
	if err := s.usable(); err != nil {
		return nil, fmt.Errorf("api error: code = Internal desc = failed to get job due to: %w", err)
	}
	st, err := r.store()
	if err != nil {
		return nil, err
	}
	list, err := r.loadReminders(ctx, st, actorType)
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		if s.ActorID == actorID && s.Name == name {
			rem := s.reminder()
			return &rem, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", ErrReminderNotFound, name)
}

func (s stateReminders) List(ctx context.Context, actorType string, actorID *string) ([]Reminder, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	st, err := s.r.store()
	if err != nil {
		return nil, err
	}
	list, err := s.r.loadReminders(ctx, st, actorType)
	if err != nil {
		return nil, err
	}
	var out []Reminder
	for _, x := range list {
		if actorID == nil || x.ActorID == *actorID {
			out = append(out, x.reminder())
		}
	}
	return out, nil
}

func (s stateReminders) DeleteByActor(ctx context.Context, actorType string, actorID *string) error {
	if err := s.usable(); err != nil {
		return err
	}
	return s.r.updateReminders(ctx, actorType, reminderChange{Apply: func(list []storedReminder) ([]storedReminder, error) {
		return slices.DeleteFunc(list, func(x storedReminder) bool { return actorID == nil || x.ActorID == *actorID }), nil
	}})
}

// DeleteReminder removes a reminder; a missing one is not an error.
func (r *Runtime) DeleteReminder(ctx context.Context, actorType, actorID, name string) error {
	if r == nil || r.placement == nil {
		return ErrNoPlacement
	}
	if !r.Hosts(ctx, actorType) {
		return ErrReminderNotHosted
	}
	return r.remStore.Delete(ctx, actorType, actorID, name)
}

func (s stateReminders) Delete(ctx context.Context, actorType, actorID, name string) error {
	if err := s.usable(); err != nil {
		return err
	}
	return s.r.updateReminders(ctx, actorType, reminderChange{ActorID: actorID, Name: name, Apply: func(list []storedReminder) ([]storedReminder, error) {
		return slices.DeleteFunc(list, func(s storedReminder) bool { return s.ActorID == actorID && s.Name == name }), nil
	}})
}

type reminderBody struct {
	Data    json.RawMessage `json:"data"`
	DueTime string          `json:"dueTime"`
	Period  string          `json:"period"`
}

func (r *Runtime) wakeReminders() {
	select {
	case r.rem.wake <- struct{}{}:
	default:
	}
}

// runReminders reconciles this host's firing goroutines with the stored
// reminders it owns, every second and whenever the table changes, until
// ctx ends. This host's own writes start and stop their runners at once
// (remindersWritten) without reading every reminder again.
func (r *Runtime) runReminders(ctx context.Context) {
	defer r.rem.wg.Wait()
	r.rem.mu.Lock()
	r.rem.ctx = ctx
	r.rem.mu.Unlock()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		r.reconcileReminders(ctx)
		select {
		case <-ctx.Done():
			r.rem.mu.Lock()
			r.rem.ctx = nil // no runner starts after this: wg.Wait follows
			for _, run := range r.rem.running {
				run.cancel()
			}
			r.rem.mu.Unlock()
			return
		case <-t.C:
		case <-r.rem.wake:
		}
	}
}

func (r *Runtime) reconcileReminders(ctx context.Context) {
	st, err := r.store()
	if err != nil || r.placement == nil || !r.placement.Table().Ready() {
		return
	}
	r.mu.Lock()
	var types []string
	for t := range r.types {
		types = append(types, t)
	}
	r.mu.Unlock()
	want := map[string]storedReminder{}
	for _, typ := range types {
		list, err := r.loadReminders(ctx, st, typ)
		if err != nil {
			r.log.Warn("load reminders", "actor_type", typ, "error", err)
			return // keep what runs: a store hiccup must not stop reminders
		}
		for _, s := range list {
			if r.ownsReminder(s) {
				want[s.id()] = s
			}
		}
	}
	r.rem.mu.Lock()
	defer r.rem.mu.Unlock()
	if r.rem.ctx == nil {
		return
	}
	for id, run := range r.rem.running {
		if s, ok := want[id]; !ok || s.RegisteredTime != run.registered {
			run.cancel()
			delete(r.rem.running, id)
		}
	}
	for _, s := range want {
		r.startReminderLocked(s)
	}
}

func (r *Runtime) ownsReminder(s storedReminder) bool {
	h, ok := r.placement.Table().Owner(s.ActorType, s.ActorID)
	return ok && isLocal(h.Name, r.hostName)
}

// startReminderLocked starts the runner of s unless it runs already.
func (r *Runtime) startReminderLocked(s storedReminder) {
	if _, ok := r.rem.running[s.id()]; ok {
		return
	}
	rctx, cancel := context.WithCancel(r.rem.ctx)
	token := new(struct{ _ byte })
	r.rem.running[s.id()] = reminderRunner{cancel: cancel, registered: s.RegisteredTime, token: token}
	r.rem.wg.Go(func() { r.fireReminder(rctx, s, token) })
}

// remindersWritten brings the runners of the reminders a write of this
// host changed in step with it: a reminder created or re-created here
// and owned here starts firing at once, a deleted one stops. Changes of
// many reminders (by actor or type) wake a full reconciliation.
func (r *Runtime) remindersWritten(set *reminderSet, applied []reminderChange) {
	if r.placement == nil || !r.placement.Table().Ready() {
		return // the first reconciliation, once the table is there, reads them
	}
	full := false
	r.rem.mu.Lock()
	defer r.rem.mu.Unlock()
	if r.rem.ctx == nil {
		return
	}
	for _, c := range applied {
		if c.Name == "" {
			full = true
			continue
		}
		id := set.actorType + "||" + c.ActorID + "||" + c.Name
		var now *storedReminder
		for i, x := range set.slots[set.slotOf(c.ActorID, c.Name)] {
			if x.ActorID == c.ActorID && x.Name == c.Name {
				now = &set.slots[set.slotOf(c.ActorID, c.Name)][i]
				break
			}
		}
		run, running := r.rem.running[id]
		if running && (now == nil || now.RegisteredTime != run.registered || !r.ownsReminder(*now)) {
			run.cancel()
			delete(r.rem.running, id)
		}
		if now != nil && r.ownsReminder(*now) {
			r.startReminderLocked(*now)
		}
	}
	if full {
		r.wakeReminders()
	}
}

// fireReminder waits for the reminder's next firing, calls the actor and
// records the progress, until the reminder ends or is taken away.
func (r *Runtime) fireReminder(ctx context.Context, s storedReminder, token *struct{ _ byte }) {
	defer func() {
		r.rem.mu.Lock()
		if run, ok := r.rem.running[s.id()]; ok && run.token == token {
			run.cancel()
			delete(r.rem.running, s.id())
		}
		r.rem.mu.Unlock()
	}()
	period, err := schedule.ParsePeriod(s.Period)
	if err != nil {
		r.log.Error("stored reminder has an invalid period; not firing it", "reminder", s.id(), "error", err)
		return
	}
	msg := &anypb.Any{}
	if isInternalType(s.ActorType) {
		msg = internalReminderMessage(s.dataAny())
	} else {
		msg.Value, _ = json.Marshal(reminderBody{Data: dataOrNull(s.Data), DueTime: s.DueTime, Period: s.Period})
	}
	for {
		t := time.NewTimer(time.Until(s.NextFireTime))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if exp, err := time.Parse(time.RFC3339Nano, s.ExpirationTime); err == nil && !s.NextFireTime.Before(exp) {
			r.finishReminder(ctx, s)
			return
		}
		req := &internalsv1.InternalInvokeRequest{
			Ver:   internalsv1.APIVersion_V1,
			Actor: &internalsv1.Actor{ActorType: s.ActorType, ActorId: s.ActorID},
			Message: &commonv1.InvokeRequest{
				Method: "remind/" + s.Name, ContentType: "application/json", Data: msg,
				HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_PUT},
			},
		}
		resp, err := r.callLocal(ctx, req)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.log.Warn("actor reminder failed", "reminder", s.id(), "error", err)
		}
		cancelled := resp != nil && cancelHeader(resp)
		if s.RepetitionsLeft > 0 {
			s.RepetitionsLeft--
		}
		if cancelled || !period.Repeating() || s.RepetitionsLeft == 0 {
			r.finishReminder(ctx, s)
			return
		}
		s.NextFireTime = period.Next(s.NextFireTime)
		if now := time.Now(); s.NextFireTime.Before(now) {
			s.NextFireTime = now // late (a restart): fire once now, then on period
		}
		if !r.recordReminder(ctx, s) {
			return
		}
	}
}

func cancelHeader(resp *internalsv1.InternalInvokeResponse) bool {
	for k, v := range resp.GetHeaders() {
		if strings.EqualFold(k, "X-DaprReminderCancel") && len(v.GetValues()) > 0 && strings.EqualFold(v.GetValues()[0], "true") {
			return true
		}
	}
	return false
}

// recordReminder stores the progress; false when the reminder was deleted
// or re-created meanwhile (then this runner stops).
func (r *Runtime) recordReminder(ctx context.Context, s storedReminder) bool {
	still := false
	err := r.updateReminders(ctx, s.ActorType, reminderChange{ActorID: s.ActorID, Name: s.Name, Apply: func(list []storedReminder) ([]storedReminder, error) {
		still = false
		for i := range list {
			if list[i].id() == s.id() && list[i].RegisteredTime == s.RegisteredTime {
				list[i] = s
				still = true
			}
		}
		return list, nil
	}})
	if err != nil {
		r.log.Warn("record reminder progress", "reminder", s.id(), "error", err)
		return true
	}
	return still
}

// finishReminder deletes a reminder that has no firing left.
func (r *Runtime) finishReminder(ctx context.Context, s storedReminder) {
	err := r.updateReminders(ctx, s.ActorType, reminderChange{ActorID: s.ActorID, Name: s.Name, Apply: func(list []storedReminder) ([]storedReminder, error) {
		return slices.DeleteFunc(list, func(x storedReminder) bool { return x.id() == s.id() && x.RegisteredTime == s.RegisteredTime }), nil
	}})
	if err != nil {
		r.log.Warn("delete finished reminder", "reminder", s.id(), "error", err)
	}
}
