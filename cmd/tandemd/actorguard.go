package main

import (
	"log/slog"
	"slices"
	"strings"

	"github.com/tandemrun/tandem/components"
)

// actorStateStoreKey is the state store metadata that makes the store the
// actors' one.
const actorStateStoreKey = "actorStateStore"

// guardActorStateStore returns next with every component change daprd
// refuses to hot-reload undone: the creation, update or removal of the
// state store the actors use (by name), and of any state store whose old
// or new metadata names actorStateStore. The refused component keeps its
// applied version (or stays absent) until the sidecar restarts; each
// refusal whose name is in events (changed since the last reload) is
// logged in daprd's words. prev is the applied set; next is not modified.
func guardActorStateStore(prev, next *components.Set, events []components.Event, log *slog.Logger) *components.Set {
	if prev == nil || next == nil {
		return next
	}
	actorStore := ""
	for _, c := range prev.Components {
		if c.Category() == "state" && actorStateStore(c) {
			actorStore = c.Name
			break
		}
	}
	changed := func(name string) bool {
		return slices.ContainsFunc(events, func(e components.Event) bool {
			return e.Kind == components.KindComponent && e.Name == name
		})
	}
	find := func(list []components.Component, name string) (components.Component, bool) {
		i := slices.IndexFunc(list, func(c components.Component) bool { return c.Name == name })
		if i < 0 {
			return components.Component{}, false
		}
		return list[i], true
	}
	// refused reports whether daprd would refuse to move name from old to
	// updated, and logs it; the component named in the log is the new
	// one, or the removed one.
	refused := func(old, updated components.Component, hasOld, hasNew bool) bool {
		subject := updated
		if !hasNew {
			subject = old
		}
		reject := subject.Name == actorStore
		if !reject {
			for _, c := range []struct {
				comp components.Component
				ok   bool
			}{{updated, hasNew}, {old, hasOld}} {
				if c.ok && c.comp.Category() == "state" && hasActorStateStoreKey(c.comp) {
					subject, reject = c.comp, true
					break
				}
			}
		}
		if reject && changed(subject.Name) {
			log.Error("Aborting to hot-reload a state store component that is used as an actor state store: " + subject.LogName())
		}
		return reject
	}

	out := *next
	out.Components = slices.Clone(next.Components)
	for _, updated := range next.Components {
		old, hasOld := find(prev.Components, updated.Name)
		if hasOld && old.Same(updated) {
			continue
		}
		if refused(old, updated, hasOld, true) {
			i := slices.IndexFunc(out.Components, func(c components.Component) bool { return c.Name == updated.Name })
			if hasOld {
				out.Components[i] = old
			} else {
				out.Components = slices.Delete(out.Components, i, i+1)
			}
		}
	}
	for _, old := range prev.Components {
		if _, ok := find(next.Components, old.Name); ok {
			continue
		}
		if refused(old, components.Component{}, true, false) {
			out.Components = append(out.Components, old)
		}
	}
	return &out
}

// hasActorStateStoreKey reports whether c's metadata names actorStateStore,
// whatever its value (daprd's test).
func hasActorStateStoreKey(c components.Component) bool {
	return slices.ContainsFunc(c.Metadata, func(m components.MetadataItem) bool {
		return strings.EqualFold(m.Name, actorStateStoreKey)
	})
}

// actorStateStore reports whether c is marked as the actors' state store.
func actorStateStore(c components.Component) bool {
	return slices.ContainsFunc(c.Metadata, func(m components.MetadataItem) bool {
		return strings.EqualFold(m.Name, actorStateStoreKey) && truthy(m.Value)
	})
}
