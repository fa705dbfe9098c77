package httpapi

// registerPubSub adds the publish API routes when cfg.PubSub is set. (Stub.)
func (h *Handler) registerPubSub() {}
