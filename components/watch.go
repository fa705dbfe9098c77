package components

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/tandemrun/tandem/internal/filewatch"
)

// Op is what happened to a resource.
type Op int

const (
	Added Op = iota + 1
	Changed
	Removed
)

func (o Op) String() string {
	switch o {
	case Added:
		return "added"
	case Changed:
		return "changed"
	case Removed:
		return "removed"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Event is one resource added, changed or removed.
type Event struct {
	Op     Op
	Kind   string
	Name   string
	Source string
}

func (e Event) String() string { return fmt.Sprintf("%s %s %q (%s)", e.Op, e.Kind, e.Name, e.Source) }

// Change is one reload of the resource folders.
type Change struct {
	// Set is the whole new set of resources. A resource whose file became
	// broken is kept at its last good version, so consumers can simply
	// apply Set (e.g. Manager.Apply(Set.Components)).
	Set *Set
	// Events lists what differs from the previous set.
	Events []Event
	// Errors are the problems of this reload (same as Set.Errors).
	Errors []*ResourceError
	// Conflict is Set.Conflict(): not nil, daprd would stop.
	Conflict error
}

// Watch polls dirs every interval (default 1s) and sends a Change whenever
// the resources differ from prev (the set loaded at startup) or the
// problems found change. Polling compares file contents, so edits in
// place, atomic renames and Kubernetes ConfigMap symlink swaps are all
// seen; new contents are loaded once they have settled (internal/filewatch:
// two polls in a row saw them), so a file caught half written is not. The
// channel is closed when ctx ends. Changes are not dropped: a slow reader
// delays the next poll.
func Watch(ctx context.Context, dirs []string, f Filter, interval time.Duration, prev *Set) <-chan Change {
	if prev == nil {
		prev = &Set{}
	}
	out := make(chan Change)
	w := &filewatch.Watcher{
		Read:     func() ([]byte, error) { return fingerprint(dirs), nil },
		Interval: interval,
		Apply: func([]byte) error {
			next, _ := LoadFiltered(dirs, f)
			next = keepLastGood(prev, next)
			events := Diff(prev, next)
			if len(events) == 0 && sameErrors(prev.Errors, next.Errors) && len(next.Conflicts) == 0 {
				prev = next
				return nil
			}
			select {
			case out <- Change{Set: next, Events: events, Errors: next.Errors, Conflict: next.Conflict()}:
				prev = next
			case <-ctx.Done():
			}
			return nil
		},
	}
	go func() {
		defer close(out)
		_ = w.Run(ctx)
	}()
	return out
}

// fingerprint hashes the names and contents of the resource files, and
// the errors reading them.
func fingerprint(dirs []string) []byte {
	h := sha256.New()
	s := &Set{}
	for _, f := range listFiles(dirs, s) {
		data, err := os.ReadFile(f)
		fmt.Fprintf(h, "%s\x00%d\x00%v\x00", f, len(data), err)
		h.Write(data)
	}
	for _, e := range s.Errors {
		fmt.Fprintf(h, "%s\x00", e.Error())
	}
	return h.Sum(nil)
}

// keepLastGood returns next with the resources that broke since prev put
// back at their previous version: all of prev's resources from a file that
// could not be read or parsed, and prev's version of each named resource
// whose new version is invalid.
func keepLastGood(prev, next *Set) *Set {
	if len(next.Errors) == 0 {
		return next
	}
	have := map[string]bool{}
	for _, k := range keysOf(next) {
		have[k] = true
	}
	carry := func(kind, name, source string) bool {
		key := kind + "/" + name
		if have[key] {
			return false
		}
		for _, e := range next.Errors {
			switch {
			case e.fileLevel() && (e.File == source || filepath.Dir(source) == filepath.Clean(e.File)):
			case e.Name != "" && e.Name == name && (e.Kind == kind || e.Kind == "document"):
			default:
				continue
			}
			have[key] = true
			return true
		}
		return false
	}
	out := &Set{Components: slices.Clone(next.Components), Subscriptions: slices.Clone(next.Subscriptions),
		HTTPEndpoints: slices.Clone(next.HTTPEndpoints), Documents: slices.Clone(next.Documents), Errors: next.Errors, Conflicts: next.Conflicts}
	for _, c := range prev.Components {
		if carry(KindComponent, c.Name, c.Source) {
			out.Components = append(out.Components, c)
		}
	}
	for _, s := range prev.Subscriptions {
		if carry(KindSubscription, s.Name, s.Source) {
			out.Subscriptions = append(out.Subscriptions, s)
		}
	}
	for _, e := range prev.HTTPEndpoints {
		if carry(KindHTTPEndpoint, e.Name, e.Source) {
			out.HTTPEndpoints = append(out.HTTPEndpoints, e)
		}
	}
	for _, d := range prev.Documents {
		if carry(d.Kind, docName(d), d.Source) {
			out.Documents = append(out.Documents, d)
		}
	}
	return out
}

func docName(d Document) string {
	if d.Name == "" {
		return d.Source // unnamed Configuration documents: one per file
	}
	return d.Name
}

func keysOf(s *Set) []string {
	var out []string
	for _, c := range s.Components {
		out = append(out, KindComponent+"/"+c.Name)
	}
	for _, x := range s.Subscriptions {
		out = append(out, KindSubscription+"/"+x.Name)
	}
	for _, e := range s.HTTPEndpoints {
		out = append(out, KindHTTPEndpoint+"/"+e.Name)
	}
	for _, d := range s.Documents {
		out = append(out, d.Kind+"/"+docName(d))
	}
	return out
}

// Diff lists the resources added, changed and removed from prev to next,
// components first, then subscriptions, HTTP endpoints, then other
// documents.
func Diff(prev, next *Set) []Event {
	var ev []Event
	diffBy(&ev, KindComponent, prev.Components, next.Components,
		func(c Component) (string, string) { return c.Name, c.Source }, Component.Same)
	diffBy(&ev, KindSubscription, prev.Subscriptions, next.Subscriptions,
		func(s Subscription) (string, string) { return s.Name, s.Source }, Subscription.Same)
	diffBy(&ev, KindHTTPEndpoint, prev.HTTPEndpoints, next.HTTPEndpoints,
		func(e HTTPEndpoint) (string, string) { return e.Name, e.Source }, HTTPEndpoint.Same)
	diffBy(&ev, "", prev.Documents, next.Documents,
		func(d Document) (string, string) { return d.Kind + "/" + docName(d), d.Source },
		func(a, b Document) bool {
			return a.APIVersion == b.APIVersion && bytes.Equal(a.Raw, b.Raw) && slices.Equal(a.Scopes, b.Scopes)
		})
	return ev
}

func diffBy[R any](ev *[]Event, kind string, prev, next []R, key func(R) (string, string), same func(a, b R) bool) {
	old := map[string]R{}
	for _, r := range prev {
		k, _ := key(r)
		old[k] = r
	}
	seen := map[string]bool{}
	mk := func(op Op, k, src string) Event {
		e := Event{Op: op, Kind: kind, Name: k, Source: src}
		if kind == "" { // documents: key is kind/name
			for i := range len(k) {
				if k[i] == '/' {
					e.Kind, e.Name = k[:i], k[i+1:]
					break
				}
			}
		}
		return e
	}
	for _, r := range next {
		k, src := key(r)
		seen[k] = true
		o, ok := old[k]
		switch {
		case !ok:
			*ev = append(*ev, mk(Added, k, src))
		case !same(o, r):
			*ev = append(*ev, mk(Changed, k, src))
		}
	}
	for _, r := range prev {
		k, src := key(r)
		if !seen[k] {
			*ev = append(*ev, mk(Removed, k, src))
		}
	}
}

func sameErrors(a, b []*ResourceError) bool {
	return slices.EqualFunc(a, b, func(x, y *ResourceError) bool { return x.Error() == y.Error() })
}
