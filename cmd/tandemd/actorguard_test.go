package main

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
)

func guardComp(name, typ string, md ...string) components.Component {
	c := components.Component{Name: name, Type: typ, Version: "v1"}
	for i := 0; i+1 < len(md); i += 2 {
		c.Metadata = append(c.Metadata, components.MetadataItem{Name: md[i], Value: md[i+1]})
	}
	return c
}

func TestGuardActorStateStore(t *testing.T) {
	actor := guardComp("mystore", "state.in-memory", "actorstatestore", "true")
	plain := guardComp("other", "state.in-memory")
	const msg = "Aborting to hot-reload a state store component that is used as an actor state store: "
	for _, tc := range []struct {
		name       string
		prev, next []components.Component
		want       []components.Component
		logged     string // the LogName in the log line, "" for none
	}{
		{name: "create marked store", prev: nil, next: []components.Component{actor},
			want: nil, logged: "mystore (state.in-memory/v1)"},
		{name: "update to another type", prev: []components.Component{actor},
			next: []components.Component{guardComp("mystore", "pubsub.in-memory", "actorstatestore", "true")},
			want: []components.Component{actor}, logged: "mystore (pubsub.in-memory/v1)"},
		{name: "update dropping the mark", prev: []components.Component{actor},
			next: []components.Component{guardComp("mystore", "state.in-memory")},
			want: []components.Component{actor}, logged: "mystore (state.in-memory/v1)"},
		{name: "delete", prev: []components.Component{actor, plain}, next: []components.Component{plain},
			want: []components.Component{plain, actor}, logged: "mystore (state.in-memory/v1)"},
		{name: "unmarked store reloads", prev: []components.Component{actor},
			next: []components.Component{actor, plain}, want: []components.Component{actor, plain}},
		{name: "unmarked store removed", prev: []components.Component{actor, plain},
			next: []components.Component{actor}, want: []components.Component{actor}},
		{name: "mark with false still refused", prev: nil,
			next: []components.Component{guardComp("s", "state.redis", "actorStateStore", "false")},
			want: nil, logged: "s (state.redis/v1)"},
		{name: "non-state component with the key", prev: nil,
			next: []components.Component{guardComp("p", "pubsub.in-memory", "actorStateStore", "true")},
			want: []components.Component{guardComp("p", "pubsub.in-memory", "actorStateStore", "true")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			prev := &components.Set{Components: tc.prev}
			next := &components.Set{Components: slices.Clone(tc.next)}
			events := components.Diff(prev, next)
			got := guardActorStateStore(prev, next, events, log)
			if !slices.EqualFunc(got.Components, tc.want, components.Component.Same) {
				t.Fatalf("components = %+v, want %+v", got.Components, tc.want)
			}
			if !slices.EqualFunc(next.Components, tc.next, components.Component.Same) {
				t.Fatalf("next was modified: %+v", next.Components)
			}
			switch {
			case tc.logged == "" && strings.Contains(buf.String(), "Aborting"):
				t.Fatalf("unexpected log: %s", buf.String())
			case tc.logged != "" && !strings.Contains(buf.String(), msg+tc.logged):
				t.Fatalf("log %q lacks %q", buf.String(), msg+tc.logged)
			}
			// A later reload that leaves the refused file as it is does
			// not log again.
			buf.Reset()
			again := guardActorStateStore(got, next, nil, log)
			if !slices.EqualFunc(again.Components, tc.want, components.Component.Same) {
				t.Fatalf("second reload: components = %+v, want %+v", again.Components, tc.want)
			}
			if buf.Len() != 0 {
				t.Fatalf("second reload logged: %s", buf.String())
			}
		})
	}
}
