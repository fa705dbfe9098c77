package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/baggage"

	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// registerBindings adds the output bindings route when cfg.Bindings is
// set.
func (h *Handler) registerBindings() {
	if h.cfg.Bindings == nil {
		return
	}
	h.route("POST /v1.0/bindings/{name}", h.invokeBinding)
	h.route("PUT /v1.0/bindings/{name}", h.invokeBinding)
}

// outputBindingRequest is the body of POST /v1.0/bindings/{name}.
type outputBindingRequest struct {
	Metadata  map[string]string `json:"metadata"`
	Data      any               `json:"data"`
	Operation string            `json:"operation"`
}

// invokeBinding is POST/PUT /v1.0/bindings/{name}: the data is passed on
// as its JSON text (re-encoded as daprd does), the answer's metadata comes
// back as metadata.<key> headers (with an error too), its data as the
// body (200), or 204 when the binding answered nothing.
func (h *Handler) invokeBinding(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.writeErr(w, h.bodyErr(err))
		return
	}
	var req outputBindingRequest
	if err := json.Unmarshal(body, &req); err != nil {
		apierr.WriteHTTP(w, apierr.MalformedRequest("failed deserializing HTTP body: %v", err))
		return
	}
	data, err := json.Marshal(req.Data)
	if err != nil {
		apierr.WriteHTTP(w, &apierr.Error{Code: "ERR_MALFORMED_REQUEST_DATA", HTTPStatus: http.StatusInternalServerError,
			Message: "can't serialize request data field: " + err.Error()})
		return
	}
	if req.Metadata == nil {
		req.Metadata = map[string]string{}
	}
	tp, ts := api.TraceContext(r.Context(), r.Header.Get("Traceparent"), r.Header.Get("Tracestate"))
	req.Metadata["traceparent"] = tp
	if ts != "" {
		req.Metadata["tracestate"] = ts
	}
	if bg := r.Header.Values("Baggage"); len(bg) > 0 {
		joined := strings.Join(bg, ",")
		if _, err := baggage.Parse(joined); err != nil {
			apierr.WriteHTTP(w, apierr.MalformedRequest("invalid baggage header: %v", err))
			return
		}
		req.Metadata["baggage"] = joined
	}
	resp, err := h.cfg.Bindings.Invoke(r.Context(), name, &bindings.InvokeRequest{Operation: req.Operation, Data: data, Metadata: req.Metadata})
	if resp != nil {
		for k, v := range resp.Metadata {
			w.Header().Add("metadata."+k, v)
		}
	}
	if err != nil {
		h.log.Debug("output binding failed", "binding", name, "error", err)
		apierr.WriteHTTP(w, apierr.InvokeOutputBinding(name, err))
		return
	}
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp.Data)
}
