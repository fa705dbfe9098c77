package httpapi

// registerState adds the state API routes when cfg.State is set. (Stub.)
func (h *Handler) registerState() {}
