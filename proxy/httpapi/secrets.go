package httpapi

// registerSecrets adds the secrets API routes when cfg.Secrets is set. (Stub.)
func (h *Handler) registerSecrets() {}
