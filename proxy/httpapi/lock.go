package httpapi

import (
	"io"
	"net/http"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tandemrun/tandem/proxy/apierr"
)

// registerLock adds the distributed lock routes (v1.0-alpha1) when
// cfg.Lock is set.
func (h *Handler) registerLock() {
	if h.cfg.Lock == nil {
		return
	}
	h.route("POST /v1.0-alpha1/lock/{storeName}", h.tryLock)
	h.route("POST /v1.0-alpha1/unlock/{storeName}", h.unlock)
}

// readProto decodes a JSON body into m as daprd's universal handlers do
// (protojson, unknown fields ignored); false after writing the error.
func (h *Handler) readProto(w http.ResponseWriter, r *http.Request, m proto.Message) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		h.writeErr(w, h.bodyErr(err))
		return false
	}
	if len(body) == 0 {
		return true
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true, AllowPartial: true}).Unmarshal(body, m); err != nil {
		apierr.WriteHTTP(w, apierr.MalformedRequest("failed deserializing HTTP body: %v", err))
		return false
	}
	return true
}

// writeProto answers m as JSON with every field, as daprd does.
func writeProto(w http.ResponseWriter, m proto.Message, enumNumbers bool) {
	writeProtoWith(w, m, protojson.MarshalOptions{EmitUnpopulated: true, UseEnumNumbers: enumNumbers})
}

// writeProtoWith answers m as JSON marshalled with opts.
func writeProtoWith(w http.ResponseWriter, m proto.Message, opts protojson.MarshalOptions) {
	b, err := opts.Marshal(m)
	if err != nil {
		apierr.WriteHTTP(w, apierr.Internal(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// tryLock is POST /v1.0-alpha1/lock/{storeName}:
// {"resourceId","lockOwner","expiryInSeconds"} -> {"success":bool}.
func (h *Handler) tryLock(w http.ResponseWriter, r *http.Request) {
	in := &runtimev1.TryLockRequest{}
	if !h.readProto(w, r, in) {
		return
	}
	in.StoreName = r.PathValue("storeName")
	out, err := h.cfg.Lock.TryLock(r.Context(), in)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	writeProto(w, out, false)
}

// unlock is POST /v1.0-alpha1/unlock/{storeName}:
// {"resourceId","lockOwner"} -> {"status":0..3}.
func (h *Handler) unlock(w http.ResponseWriter, r *http.Request) {
	in := &runtimev1.UnlockRequest{}
	if !h.readProto(w, r, in) {
		return
	}
	in.StoreName = r.PathValue("storeName")
	out, err := h.cfg.Lock.Unlock(r.Context(), in)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	writeProto(w, out, true)
}
