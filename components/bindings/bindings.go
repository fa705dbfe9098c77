// Package bindings defines the bindings building block: the Binding
// interface its backends implement (an input side that reads events from
// an outside system, an output side that invokes operations on it, or
// both), the Kind a components.Manager runs them with, and the rules every
// backend shares (spec.metadata direction, route).
//
// An input binding's contract is at-least-once: Read hands each event to
// the Handler and treats a Handler error as "not delivered" in the way its
// system allows (requeue, no ack, redelivery); a backend that has nothing to
// redeliver (cron) says so in its doc. When Read's context ends the backend
// stops taking new events, lets running handlers finish, and returns.
//
// Backends live in sub-packages and import only this package and
// components; builtin lists them for cmd; bindingstest is the contract
// suite every backend passes.
package bindings

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tandemrun/tandem/components"
)

// Category is the spec.type prefix of binding components.
const Category = "bindings"

// Metadata names shared by every binding.
const (
	// MetadataDirection restricts a component to "input", "output" or
	// "input, output" (daprd's rule: absent means both, where the backend
	// has them).
	MetadataDirection = "direction"
	// MetadataRoute is the app path input events are posted to (default:
	// the component's name).
	MetadataRoute = "route"
)

// Operation names used by several backends (Dapr's).
const (
	OperationCreate = "create"
	OperationGet    = "get"
	OperationDelete = "delete"
	OperationList   = "list"
	OperationExec   = "exec"
	OperationQuery  = "query"
	OperationClose  = "close"
)

// Binding is one binding component. Init configures it; an instance is
// then an InputBinding, an OutputBinding or both (see Input and Output).
type Binding interface {
	Init(ctx context.Context, md components.Metadata) error
	Close() error
}

// InvokeRequest is one output binding call.
type InvokeRequest struct {
	Operation string
	Data      []byte
	Metadata  map[string]string
}

// InvokeResponse is an output binding's answer. Metadata travels back to
// the caller as "metadata.<key>" headers, even with an error (see
// ResponseError).
type InvokeResponse struct {
	Data        []byte
	Metadata    map[string]string
	ContentType string
}

// OutputBinding invokes operations on an outside system.
type OutputBinding interface {
	Binding
	// Operations lists the operations Invoke accepts.
	Operations() []string
	// Invoke runs one operation. A failure that comes with response
	// metadata (the HTTP binding's status code) is a *ResponseError.
	Invoke(ctx context.Context, req *InvokeRequest) (*InvokeResponse, error)
}

// ResponseError is an Invoke failure that still has an answer, whose
// metadata daprd returns with the error.
type ResponseError struct {
	Response *InvokeResponse
	Err      error
}

func (e *ResponseError) Error() string { return e.Err.Error() }
func (e *ResponseError) Unwrap() error { return e.Err }

// ResponseOf returns the answer carried by an Invoke error, if any.
func ResponseOf(err error) *InvokeResponse {
	var re *ResponseError
	if errors.As(err, &re) {
		return re.Response
	}
	return nil
}

// Event is one event read by an input binding.
type Event struct {
	Data     []byte
	Metadata map[string]string
}

// Handler delivers an event to the app; its result is the app's answer
// (returned to systems that take one). An error means the event was not
// delivered.
type Handler func(ctx context.Context, ev *Event) ([]byte, error)

// InputBinding reads events from an outside system.
type InputBinding interface {
	Binding
	// Read delivers events to h until ctx ends, then returns once the
	// handlers it started have returned. An error means reading failed
	// for good (the sidecar logs it; a reload restarts it).
	Read(ctx context.Context, h Handler) error
}

// Sider is implemented by a binding whose sides are known only after Init
// (a pluggable component serves the input side, the output side or both).
type Sider interface {
	Sides() Direction
}

// SidesOf reports the sides an initialised binding has: those it says
// (Sider), else those it implements.
func SidesOf(b Binding) Direction {
	if s, ok := b.(Sider); ok {
		return s.Sides()
	}
	_, in := b.(InputBinding)
	_, out := b.(OutputBinding)
	return Direction{Input: in, Output: out}
}

// Direction says which sides of a component are in use.
type Direction struct {
	Input, Output bool
}

// DirectionOf reads the direction metadata of a component: absent means
// both sides, as in daprd; otherwise a comma-separated list of "input"
// and "output" (any case). explicitInput reports whether "input" was
// named, which spares the app's subscription check.
func DirectionOf(md components.Metadata) (d Direction, explicitInput bool, err error) {
	v, ok := md.Get(MetadataDirection)
	if !ok {
		return Direction{Input: true, Output: true}, false, nil
	}
	for part := range strings.SplitSeq(v, ",") {
		switch strings.ToLower(strings.TrimSpace(part)) {
		case "input":
			d.Input = true
		case "output":
			d.Output = true
		case "":
		default:
			return d, false, fmt.Errorf("component %q: metadata %q: %q is not input, output or both (comma-separated)", md.Name, MetadataDirection, v)
		}
	}
	return d, d.Input, nil
}

// RouteOf is the app path of an input binding's events: the route
// metadata, or the component's name.
func RouteOf(md components.Metadata) string {
	if r := md.String(MetadataRoute, ""); r != "" {
		return r
	}
	return md.Name
}

// Instance is an initialised binding with the sides its direction leaves
// in use: Input or Output is nil when that side is off or the backend has
// none.
type Instance struct {
	Name   string
	Input  InputBinding
	Output OutputBinding
	// Route is the app path of input events; ExplicitInput is true when
	// the direction metadata names input (no subscription check).
	Route         string
	ExplicitInput bool
	raw           Binding
}

// Close closes the backend.
func (i *Instance) Close() error {
	if i == nil || i.raw == nil {
		return nil
	}
	return i.raw.Close()
}

// Capabilities are the metadata API's for the instance, as daprd lists
// them.
func (i *Instance) Capabilities() []string {
	var c []string
	if i.Input != nil {
		c = append(c, "INPUT_BINDING")
	}
	if i.Output != nil {
		c = append(c, "OUTPUT_BINDING")
	}
	return c
}

// SupportsOperation reports whether the output side accepts op.
func (i *Instance) SupportsOperation(op string) bool {
	return i.Output != nil && slices.Contains(i.Output.Operations(), op)
}

// Kind describes bindings to a components.Manager. newBinding makes an
// uninitialised backend for a spec.type (false if unknown); types lists
// the known ones. Backends mark metadata errors with components.Permanent,
// so only connection failures are retried.
func Kind(newBinding func(typ string) (Binding, bool), types []string) components.Kind[*Instance] {
	return components.Kind[*Instance]{
		Category: Category,
		Types:    types,
		New: func(typ string) (*Instance, bool) {
			b, ok := newBinding(typ)
			if !ok {
				return nil, false
			}
			return &Instance{raw: b}, true
		},
		Init: func(ctx context.Context, inst *Instance, md components.Metadata) error {
			dir, explicit, err := DirectionOf(md)
			if err != nil {
				return components.Permanent(err)
			}
			if err := inst.raw.Init(ctx, md); err != nil {
				return err
			}
			has := SidesOf(inst.raw)
			in, _ := inst.raw.(InputBinding)
			out, _ := inst.raw.(OutputBinding)
			inst.Input, inst.Output = nil, nil
			if dir.Input && has.Input {
				inst.Input = in
			}
			if dir.Output && has.Output {
				inst.Output = out
			}
			if inst.Input == nil && inst.Output == nil {
				_ = inst.raw.Close()
				return components.Permanent(fmt.Errorf("component %q: %s has no %s side: change the direction metadata", md.Name, md.Type, directionWords(dir)))
			}
			inst.Name, inst.Route, inst.ExplicitInput = md.Name, RouteOf(md), explicit
			return nil
		},
		Close:        func(inst *Instance) error { return inst.Close() },
		Capabilities: func(inst *Instance) []string { return inst.Capabilities() },
	}
}

func directionWords(d Direction) string {
	switch {
	case d.Input && d.Output:
		return "input or output"
	case d.Input:
		return "input"
	default:
		return "output"
	}
}

type resiliencyKey struct{}

// WithResiliency marks ctx as carrying a call made under a Resiliency
// policy, so a backend with retries of its own (bindings.http) leaves them
// to the policy.
func WithResiliency(ctx context.Context) context.Context {
	return context.WithValue(ctx, resiliencyKey{}, true)
}

// UnderResiliency reports whether ctx was marked by WithResiliency.
func UnderResiliency(ctx context.Context) bool {
	v, _ := ctx.Value(resiliencyKey{}).(bool)
	return v
}
