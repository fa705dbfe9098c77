package otlptest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// ZipkinPath is where Zipkin's v2 API takes spans.
const ZipkinPath = "/api/v2/spans"

// StartZipkin serves a Zipkin v2 receiver on 127.0.0.1 (random port) until
// the test ends: POST ZipkinPath with a JSON array of spans, answered 202
// like Zipkin. Spans land in the same form as OTLP ones (Service from
// localEndpoint.serviceName, Attributes from tags), so Trace and
// WaitTrace work unchanged. Point the exporter at URL.
func StartZipkin(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+ZipkinPath, r.zipkinSpans)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	r.addr = hs.Listener.Addr().String()
	r.url = hs.URL + ZipkinPath
	return r
}

// URL is the spans URL of a StartZipkin receiver.
func (r *Receiver) URL() string { return r.url }

// zipkinSpan is the part of a Zipkin v2 span the tests look at.
type zipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	ParentID      string            `json:"parentId"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind"`
	Tags          map[string]string `json:"tags"`
	LocalEndpoint struct {
		ServiceName string `json:"serviceName"`
	} `json:"localEndpoint"`
}

// zipkinKinds maps Zipkin's kind onto OTLP's; Zipkin has no INTERNAL,
// and an absent kind stays unspecified.
var zipkinKinds = map[string]tracepb.Span_SpanKind{
	"SERVER":   tracepb.Span_SPAN_KIND_SERVER,
	"CLIENT":   tracepb.Span_SPAN_KIND_CLIENT,
	"PRODUCER": tracepb.Span_SPAN_KIND_PRODUCER,
	"CONSUMER": tracepb.Span_SPAN_KIND_CONSUMER,
}

func (r *Receiver) zipkinSpans(w http.ResponseWriter, req *http.Request) {
	var batch []zipkinSpan
	if err := json.NewDecoder(req.Body).Decode(&batch); err != nil {
		http.Error(w, "not a JSON array of Zipkin v2 spans: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range batch {
		r.spans = append(r.spans, Span{
			Service: s.LocalEndpoint.ServiceName, Name: s.Name, Kind: zipkinKinds[s.Kind],
			TraceID: s.TraceID, SpanID: s.ID, ParentSpanID: s.ParentID, Attributes: s.Tags,
		})
	}
	w.WriteHeader(http.StatusAccepted)
}
