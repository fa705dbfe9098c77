package actors

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"sync"

	"github.com/tandemrun/tandem/components/state"
)

// The actor state store keeps a type's reminders in Dapr's layout (daprd
// 1.14 and earlier, which Dapr 1.15+ reads when it moves them to its
// scheduler):
//
//	actors||{type}                                one JSON array, without partitions
//	actors||{type}||metadata                      {"id": …, "actorRemindersMetadata": {"partitionCount": N}}
//	actors||{type}||{metadata id}||reminders||{i} partition i of N (1-based) with partitions
//
// A reminder's partition is fnv32a(actor ID, name) mod N, plus 1. The app
// asks for partitions with remindersStoragePartitions in /dapr/config; a
// type stored with fewer is repartitioned (under a new metadata ID) at its
// next write, one with more keeps them (Dapr never decreases the count).
//
// Without partitions every write rewrites all the reminders of the type:
// the format makes it O(n). With N partitions a write rewrites one
// partition (and the small metadata record, as daprd does, so that a
// repartitioning and a write cannot both succeed). Writes from one host
// are batched (reminderWriter): the changes that arrive while a write is
// under way are applied together in the next one, so concurrent creations
// do not each read, rewrite and conflict over the same keys.

// nilMetadataID is the metadata ID of a type without partitions (Dapr's
// uuid.Nil).
const nilMetadataID = "00000000-0000-0000-0000-000000000000"

// remindersMetadata is Dapr's actors||{type}||metadata record.
type remindersMetadata struct {
	ID        string `json:"id"`
	Reminders struct {
		PartitionCount int `json:"partitionCount"`
	} `json:"actorRemindersMetadata"`
}

func remindersMetadataKey(actorType string) string { return "actors||" + actorType + "||metadata" }

// reminderPartition is the 1-based partition of a reminder among count
// (Dapr's hash; changing it would lose track of stored reminders).
func reminderPartition(actorID, name string, count int) int {
	h := fnv.New32a()
	h.Write([]byte(actorID))
	h.Write([]byte(name))
	return int(h.Sum32()%uint32(count)) + 1
}

// reminderSet is a type's stored reminders as read, with the versions the
// next write is conditioned on.
type reminderSet struct {
	actorType string
	meta      remindersMetadata
	metaETag  *string
	// slots holds the reminders of each key: one slot without
	// partitions, slot i-1 for partition i with them.
	slots [][]storedReminder
	etags []*string
	dirty []bool
}

func (s *reminderSet) partitions() int { return s.meta.Reminders.PartitionCount }

// key is the state key of slot i.
func (s *reminderSet) key(i int) string {
	if s.partitions() == 0 {
		return remindersKey(s.actorType)
	}
	return "actors||" + s.actorType + "||" + s.meta.ID + "||reminders||" + strconv.Itoa(i+1)
}

// slotOf is the slot holding the reminder actorID/name.
func (s *reminderSet) slotOf(actorID, name string) int {
	if s.partitions() == 0 {
		return 0
	}
	return reminderPartition(actorID, name, s.partitions()) - 1
}

func (s *reminderSet) all() []storedReminder {
	n := 0
	for _, sl := range s.slots {
		n += len(sl)
	}
	out := make([]storedReminder, 0, n)
	for _, sl := range s.slots {
		out = append(out, sl...)
	}
	return out
}

// readReminderSet reads a type's reminders in whichever layout they are.
func readReminderSet(ctx context.Context, st state.Store, actorType string) (*reminderSet, error) {
	set := &reminderSet{actorType: actorType}
	set.meta.ID = nilMetadataID
	resp, err := st.Get(ctx, &state.GetRequest{Key: remindersMetadataKey(actorType),
		Metadata: map[string]string{"partitionKey": remindersKey(actorType)}})
	if err != nil {
		return nil, fmt.Errorf("reminders metadata of %s: %w", actorType, err)
	}
	if resp != nil && len(resp.Data) > 0 {
		if err := json.Unmarshal(resp.Data, &set.meta); err != nil {
			return nil, fmt.Errorf("reminders metadata of %s: %w", actorType, err)
		}
		set.metaETag = resp.ETag
		if set.meta.Reminders.PartitionCount < 0 {
			set.meta.Reminders.PartitionCount = 0
		}
	}
	n := max(set.partitions(), 1)
	set.slots, set.etags, set.dirty = make([][]storedReminder, n), make([]*string, n), make([]bool, n)
	reqs := make([]state.GetRequest, n)
	for i := range n {
		reqs[i] = state.GetRequest{Key: set.key(i)}
		if set.partitions() > 0 {
			reqs[i].Metadata = map[string]string{"partitionKey": set.meta.ID}
		}
	}
	var resps []state.BulkGetResponse
	if n == 1 {
		r, err := st.Get(ctx, &reqs[0])
		if err != nil {
			return nil, fmt.Errorf("reminders of %s: %w", actorType, err)
		}
		one := state.BulkGetResponse{Key: reqs[0].Key}
		if r != nil {
			one.Data, one.ETag = r.Data, r.ETag
		}
		resps = []state.BulkGetResponse{one}
	} else if resps, err = state.BulkGet(ctx, st, reqs, 0); err != nil {
		return nil, fmt.Errorf("reminders of %s: %w", actorType, err)
	}
	slot := make(map[string]int, n)
	for i := range n {
		slot[reqs[i].Key] = i
	}
	for _, r := range resps {
		i, ok := slot[r.Key]
		if !ok {
			continue
		}
		if r.Error != "" {
			return nil, fmt.Errorf("reminders of %s, key %s: %s", actorType, r.Key, r.Error)
		}
		set.etags[i] = r.ETag
		if len(r.Data) == 0 {
			continue
		}
		if err := json.Unmarshal(r.Data, &set.slots[i]); err != nil {
			return nil, fmt.Errorf("reminders of %s, key %s: %w", actorType, r.Key, err)
		}
	}
	return set, nil
}

// repartition moves every reminder into count partitions under a new
// metadata ID (the old keys stay, unreferenced, as daprd leaves them).
func (s *reminderSet) repartition(count int) {
	all := s.all()
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80 // a version 4 UUID, as Dapr's
	s.meta.ID = fmt.Sprintf("%x-%x-%x-%x-%x", id[0:4], id[4:6], id[6:8], id[8:10], id[10:])
	s.meta.Reminders.PartitionCount = count
	s.slots, s.etags, s.dirty = make([][]storedReminder, count), make([]*string, count), make([]bool, count)
	for _, rem := range all {
		i := s.slotOf(rem.ActorID, rem.Name)
		s.slots[i] = append(s.slots[i], rem)
	}
	for i := range s.dirty {
		s.dirty[i] = true
	}
}

// write stores the dirty slots: without partitions one conditional set,
// with them one transaction of the partitions and the metadata record.
func (s *reminderSet) write(ctx context.Context, st state.Store) error {
	if s.partitions() == 0 {
		if !s.dirty[0] {
			return nil
		}
		b, err := json.Marshal(nonNil(s.slots[0]))
		if err != nil {
			return err
		}
		return st.Set(ctx, &state.SetRequest{Key: s.key(0), Value: b, ETag: s.etags[0]})
	}
	tx, ok := st.(state.Transactional)
	if !ok {
		return errors.New("the actor state store does not support transactions")
	}
	md := map[string]string{"partitionKey": s.meta.ID}
	first := state.Options{Concurrency: state.FirstWrite}
	var ops []state.Operation
	for i, d := range s.dirty {
		if !d {
			continue
		}
		b, err := json.Marshal(nonNil(s.slots[i]))
		if err != nil {
			return err
		}
		ops = append(ops, state.Operation{Upsert: &state.SetRequest{Key: s.key(i), Value: b, ETag: s.etags[i], Metadata: md, Options: first}})
	}
	if len(ops) == 0 {
		return nil
	}
	mb, err := json.Marshal(s.meta)
	if err != nil {
		return err
	}
	ops = append(ops, state.Operation{Upsert: &state.SetRequest{Key: remindersMetadataKey(s.actorType), Value: mb, ETag: s.metaETag, Metadata: md, Options: first}})
	return tx.Multi(ctx, &state.TransactionRequest{Operations: ops, Metadata: md})
}

// nonNil keeps an empty list "[]" in the store, as daprd writes it.
func nonNil(l []storedReminder) []storedReminder {
	if l == nil {
		return []storedReminder{}
	}
	return l
}

// reminderChange is one change to a type's reminders. A change of one
// reminder (Name set) sees only that reminder's slot; the others (Name
// empty: every reminder of an actor, or of the type) see each slot in
// turn and apply to all of them or none.
type reminderChange struct {
	ActorID, Name string
	Apply         func([]storedReminder) ([]storedReminder, error)
}

// apply runs the change on the set; an error leaves the set as it was.
func (c reminderChange) apply(s *reminderSet) error {
	slots := []int{}
	if c.Name != "" {
		slots = append(slots, s.slotOf(c.ActorID, c.Name))
	} else {
		for i := range s.slots {
			slots = append(slots, i)
		}
	}
	next := make([][]storedReminder, len(slots))
	for j, i := range slots {
		out, err := c.Apply(slices.Clone(s.slots[i]))
		if err != nil {
			return err
		}
		next[j] = out
	}
	for j, i := range slots {
		s.slots[i], s.dirty[i] = next[j], true
	}
	return nil
}

// reminderWriter batches the writes of this host to each type's
// reminders: one write at a time per type, carrying every change that
// arrived meanwhile.
type reminderWriter struct {
	mu      sync.Mutex
	pending map[string][]*pendingChange // by actor type
	busy    map[string]bool
}

type pendingChange struct {
	reminderChange
	// partitions is the count the caller's app asks for: a batch takes
	// the largest among its changes, so a change that arrives while an
	// earlier caller's batches are being written is not stored in that
	// caller's (older) layout.
	partitions int
	done       chan error
}

// maxWriteAttempts bounds the retries of a batch whose keys another host
// wrote meanwhile.
const maxWriteAttempts = 20

// writtenFunc is told each batch stored: the reminders as written and
// the changes it applied (those that failed are left out).
type writtenFunc func(set *reminderSet, applied []reminderChange)

// update applies change to actorType's reminders and returns once it is
// stored (or failed); written, when set, is told each batch stored.
func (w *reminderWriter) update(ctx context.Context, st state.Store, actorType string, partitions int, change reminderChange, written writtenFunc) error {
	p := &pendingChange{reminderChange: change, partitions: partitions, done: make(chan error, 1)}
	w.mu.Lock()
	if w.pending == nil {
		w.pending, w.busy = map[string][]*pendingChange{}, map[string]bool{}
	}
	w.pending[actorType] = append(w.pending[actorType], p)
	lead := !w.busy[actorType]
	w.busy[actorType] = true
	w.mu.Unlock()
	if lead {
		// This caller writes batches until none is left; its own change
		// is in the first one. The batches outlive a caller that gives up.
		go w.flush(context.WithoutCancel(ctx), st, actorType, written)
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *reminderWriter) flush(ctx context.Context, st state.Store, actorType string, written writtenFunc) {
	for {
		w.mu.Lock()
		batch := w.pending[actorType]
		delete(w.pending, actorType)
		if len(batch) == 0 {
			w.busy[actorType] = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.writeBatch(ctx, st, actorType, batch, written)
	}
}

func (w *reminderWriter) writeBatch(ctx context.Context, st state.Store, actorType string, batch []*pendingChange, written writtenFunc) {
	partitions := 0
	for _, p := range batch {
		partitions = max(partitions, p.partitions)
	}
	errs := make([]error, len(batch))
	var err error
	for attempt := 0; attempt < maxWriteAttempts; attempt++ {
		var set *reminderSet
		if set, err = readReminderSet(ctx, st, actorType); err != nil {
			break
		}
		if partitions > set.partitions() {
			set.repartition(partitions)
		}
		for i, p := range batch {
			errs[i] = p.apply(set)
		}
		if err = set.write(ctx, st); errors.Is(err, state.ErrETagMismatch) {
			continue
		}
		if err == nil && written != nil {
			applied := make([]reminderChange, 0, len(batch))
			for i, p := range batch {
				if errs[i] == nil {
					applied = append(applied, p.reminderChange)
				}
			}
			written(set, applied)
		}
		break
	}
	for i, p := range batch {
		if err != nil {
			p.done <- err
		} else {
			p.done <- errs[i]
		}
	}
}
