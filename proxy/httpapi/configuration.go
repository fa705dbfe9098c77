package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/tandemrun/tandem/proxy/apierr"
)

// registerConfiguration adds the configuration routes (v1.0 and
// v1.0-alpha1) when cfg.Configuration is set.
func (h *Handler) registerConfiguration() {
	if h.cfg.Configuration == nil {
		return
	}
	for _, v := range []string{"v1.0", "v1.0-alpha1"} {
		h.route("GET /"+v+"/configuration/{storeName}", h.getConfiguration)
		h.route("GET /"+v+"/configuration/{storeName}/subscribe", h.subscribeConfiguration)
		h.route("GET /"+v+"/configuration/{storeName}/{id}/unsubscribe", h.unsubscribeConfiguration)
	}
}

// getConfiguration is GET /v1.0/configuration/{store}?key=a&key=b: the
// items by key, or 204 when there are none.
func (h *Handler) getConfiguration(w http.ResponseWriter, r *http.Request) {
	items, err := h.cfg.Configuration.Get(r.Context(), r.PathValue("storeName"), r.URL.Query()["key"], requestMetadata(r))
	if err != nil {
		h.writeErr(w, err)
		return
	}
	if len(items) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(items)
}

// subscribeConfiguration is GET /v1.0/configuration/{store}/subscribe:
// changes are posted to the app; the answer is {"id":...}.
func (h *Handler) subscribeConfiguration(w http.ResponseWriter, r *http.Request) {
	id, err := h.cfg.Configuration.SubscribeApp(r.PathValue("storeName"), r.URL.Query()["key"], requestMetadata(r))
	if err != nil {
		h.writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		ID string `json:"id"`
	}{id})
}

// unsubscribeConfiguration is GET
// /v1.0/configuration/{store}/{id}/unsubscribe: {"ok":true}, or 500 with
// {"message":...}.
func (h *Handler) unsubscribeConfiguration(w http.ResponseWriter, r *http.Request) {
	type answer struct {
		Ok      bool   `json:"ok,omitempty"`
		Message string `json:"message,omitempty"`
	}
	w.Header().Set("Content-Type", "application/json")
	if err := h.cfg.Configuration.Unsubscribe(r.PathValue("id")); err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(answer{Message: apierr.From(err).Message})
		return
	}
	_ = json.NewEncoder(w).Encode(answer{Ok: true})
}
