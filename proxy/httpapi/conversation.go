package httpapi

//lint:file-ignore SA1019 Dapr deprecated the alpha1 conversation messages; daprd 1.18 still serves them, and so do we

import (
	"net/http"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// registerConversation adds the conversation routes (v1.0-alpha1 and
// v1.0-alpha2) when cfg.Conversation is set.
func (h *Handler) registerConversation() {
	if h.cfg.Conversation == nil {
		return
	}
	h.route("POST /v1.0-alpha1/conversation/{name}/converse", h.converseAlpha1)
	h.route("POST /v1.0-alpha2/conversation/{name}/converse", h.converseAlpha2)
}

// converseAlpha1 is POST /v1.0-alpha1/conversation/{name}/converse:
// Dapr's ConversationRequest as JSON -> ConversationResponse.
func (h *Handler) converseAlpha1(w http.ResponseWriter, r *http.Request) {
	in := &runtimev1.ConversationRequest{}
	if !h.readProto(w, r, in) {
		return
	}
	in.Name = r.PathValue("name")
	out, err := h.cfg.Conversation.ConverseAlpha1(r.Context(), in)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	writeProtoWith(w, out, protojson.MarshalOptions{}) // without empty fields, as daprd answers here
}

// converseAlpha2 is POST /v1.0-alpha2/conversation/{name}/converse:
// Dapr's ConversationRequestAlpha2 as JSON -> ConversationResponseAlpha2.
func (h *Handler) converseAlpha2(w http.ResponseWriter, r *http.Request) {
	in := &runtimev1.ConversationRequestAlpha2{}
	if !h.readProto(w, r, in) {
		return
	}
	in.Name = r.PathValue("name")
	out, err := h.cfg.Conversation.ConverseAlpha2(r.Context(), in)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	writeProtoWith(w, out, protojson.MarshalOptions{}) // without empty fields, as daprd answers here
}
