package bindings

import (
	"context"
	"errors"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

var directionCases = []struct {
	props         map[string]string
	want          Direction
	explicitInput bool
	wantErr       bool
}{
	{map[string]string{}, Direction{true, true}, false, false},
	{map[string]string{"direction": "input"}, Direction{Input: true}, true, false},
	{map[string]string{"direction": "Output"}, Direction{Output: true}, false, false},
	{map[string]string{"direction": "input, output"}, Direction{true, true}, true, false},
	{map[string]string{"direction": "sideways"}, Direction{}, false, true},
}

func TestDirectionOf(t *testing.T) {
	for _, c := range directionCases {
		d, explicit, err := DirectionOf(components.Metadata{Name: "b", Properties: c.props})
		if (err != nil) != c.wantErr || err == nil && (d != c.want || explicit != c.explicitInput) {
			t.Errorf("%v: %v %v %v", c.props, d, explicit, err)
		}
	}
}

// FuzzDirectionOf: see metadatafuzz.Run; a parsed direction has a side.
func FuzzDirectionOf(f *testing.F) {
	var seeds []map[string]string
	for _, c := range directionCases {
		seeds = append(seeds, c.props)
	}
	type parsed struct {
		D        Direction
		Explicit bool
	}
	metadatafuzz.Run(f, "fuzzed", []string{"direction", "route"}, seeds, func(p map[string]string) (parsed, error) {
		d, e, err := DirectionOf(components.Metadata{Name: "fuzzed", Properties: p})
		return parsed{d, e}, err
	}, func(p parsed) error {
		if p.Explicit && !p.D.Input {
			return errors.New("explicit input without the input side")
		}
		return nil
	})
}

// fake is a binding with both sides, for Kind.
type fake struct{ inited, closed bool }

func (f *fake) Init(context.Context, components.Metadata) error { f.inited = true; return nil }
func (f *fake) Close() error                                    { f.closed = true; return nil }
func (f *fake) Operations() []string                            { return []string{"create"} }
func (f *fake) Invoke(context.Context, *InvokeRequest) (*InvokeResponse, error) {
	return nil, nil
}
func (f *fake) Read(ctx context.Context, _ Handler) error { <-ctx.Done(); return nil }

func TestKind(t *testing.T) {
	k := Kind(func(typ string) (Binding, bool) {
		switch typ {
		case "bindings.fake":
			return &fake{}, true
		case "bindings.out":
			return &struct{ OutputBinding }{&fake{}}, true
		}
		return nil, false
	}, []string{"bindings.fake", "bindings.out"})
	if _, ok := k.New("bindings.none"); ok {
		t.Fatal("unknown type accepted")
	}
	inst, _ := k.New("bindings.fake")
	md := components.Metadata{Name: "f", Type: "bindings.fake", Properties: map[string]string{"direction": "output", "route": "/r"}}
	if err := k.Init(context.Background(), inst, md); err != nil {
		t.Fatal(err)
	}
	if inst.Input != nil || inst.Output == nil || inst.Route != "/r" || !inst.SupportsOperation("create") || inst.SupportsOperation("get") {
		t.Errorf("instance %+v", inst)
	}
	if c := k.Capabilities(inst); len(c) != 1 || c[0] != "OUTPUT_BINDING" {
		t.Errorf("capabilities %v", c)
	}
	out, _ := k.New("bindings.out")
	err := k.Init(context.Background(), out, components.Metadata{Name: "o", Type: "bindings.out", Properties: map[string]string{"direction": "input"}})
	if !components.IsPermanent(err) {
		t.Errorf("input direction on an output-only binding: %v, want a permanent error", err)
	}
	both, _ := k.New("bindings.fake")
	_ = k.Init(context.Background(), both, components.Metadata{Name: "b", Type: "bindings.fake"})
	if c := both.Capabilities(); len(c) != 2 || both.Route != "b" || both.ExplicitInput {
		t.Errorf("no direction: %v %q %v", c, both.Route, both.ExplicitInput)
	}
	if err := k.Close(both); err != nil {
		t.Fatal(err)
	}
}
