package spanid

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestChosenSpanID(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithIDGenerator(Generator()), sdktrace.WithSpanProcessor(rec))
	tr := tp.Tracer("t")
	want := Random()

	// A root span and a child both take the chosen ID; others get random
	// ones, all distinct.
	_, root := tr.Start(With(context.Background(), want), "root")
	root.End()
	pctx, parent := tr.Start(context.Background(), "parent")
	_, child := tr.Start(With(pctx, want), "child")
	child.End()
	parent.End()
	_, other := tr.Start(pctx, "other")
	other.End()

	spans := rec.Ended()
	if len(spans) != 4 {
		t.Fatalf("%d spans", len(spans))
	}
	byName := map[string]trace.SpanContext{}
	for _, s := range spans {
		byName[s.Name()] = s.SpanContext()
	}
	if byName["root"].SpanID() != want || !byName["root"].TraceID().IsValid() {
		t.Fatalf("root span %v, want ID %v", byName["root"], want)
	}
	if byName["child"].SpanID() != want || byName["child"].TraceID() != byName["parent"].TraceID() {
		t.Fatalf("child span %v, want ID %v in the parent's trace", byName["child"], want)
	}
	if id := byName["other"].SpanID(); id == want || id == byName["parent"].SpanID() || !id.IsValid() {
		t.Fatalf("other span ID %v", id)
	}
}
