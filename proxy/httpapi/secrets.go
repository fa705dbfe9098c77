package httpapi

import "net/http"

// registerSecrets adds daprd's secrets routes when cfg.Secrets is set.
func (h *Handler) registerSecrets() {
	if h.cfg.Secrets == nil {
		return
	}
	h.route("GET /v1.0/secrets/{secretStoreName}/bulk", h.bulkGetSecret)
	h.route("GET /v1.0/secrets/{secretStoreName}/{key}", h.getSecret)
}

// getSecret is GET /v1.0/secrets/{store}/{key} (both read as daprd does,
// see daprParam): {"<key>":"<value>",...},
// or 204 when the store answered nothing.
func (h *Handler) getSecret(w http.ResponseWriter, r *http.Request) {
	data, err := h.cfg.Secrets.Get(r.Context(), r.PathValue("secretStoreName"), r.PathValue("key"), stateMetadataFromQuery(r))
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	if data == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	stateWriteJSON(w, data)
}

// bulkGetSecret is GET /v1.0/secrets/{store}/bulk:
// {"<secret>":{"<key>":"<value>"}}, only the secrets secrets.scopes allows.
func (h *Handler) bulkGetSecret(w http.ResponseWriter, r *http.Request) {
	data, err := h.cfg.Secrets.BulkGet(r.Context(), r.PathValue("secretStoreName"), stateMetadataFromQuery(r))
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	if data == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	stateWriteJSON(w, data)
}
