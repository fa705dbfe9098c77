// Package spanid lets a caller choose the ID of a span it starts: a span
// that stands for work spread over many turns and hosts (a workflow
// instance's, ended once the instance ends) keeps the ID its work items
// named as their parent from the start. Generator is the sidecar's
// TracerProvider ID generator: random IDs, except for a span started
// directly with a context from With.
package spanid

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

type key struct{}

// With returns ctx asking for the span started with it to have ID id.
// Start no other span from it, nor from the context the tracer returns
// with that span: they would ask for the same ID.
func With(ctx context.Context, id trace.SpanID) context.Context {
	return context.WithValue(ctx, key{}, id)
}

func from(ctx context.Context) (trace.SpanID, bool) {
	id, ok := ctx.Value(key{}).(trace.SpanID)
	return id, ok && id.IsValid()
}

// Random is a new random, valid span ID.
func Random() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.BigEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}

// Generator is an sdktrace.IDGenerator honoring With.
func Generator() sdktrace.IDGenerator { return generator{} }

type generator struct{}

func (generator) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.BigEndian.PutUint64(tid[:8], rand.Uint64())
		binary.BigEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, generator{}.NewSpanID(ctx, tid)
}

func (generator) NewSpanID(ctx context.Context, _ trace.TraceID) trace.SpanID {
	if id, ok := from(ctx); ok {
		return id
	}
	return Random()
}
