package main

import (
	"fmt"
	"log/slog"
	"net/http"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/observe"
	"github.com/tandemrun/tandem/proxy/apiaccess"
)

// withAPIAccess adds spec.api's allow and deny lists to the hooks of the
// public APIs, inside the observability ones so refused calls are still
// logged, counted and traced. Hot reload is not supported (nor in daprd).
func withAPIAccess(h observe.Hooks, api config.API, log *slog.Logger) (observe.Hooks, error) {
	rules, err := apiaccess.Compile(api)
	if err != nil {
		return h, fmt.Errorf("invalid configuration: %w", err)
	}
	for _, w := range rules.Warnings() {
		log.Warn("configuration", "warning", w)
	}
	if rules.HTTPActive() {
		outer := h.HTTPMiddleware
		h.HTTPMiddleware = func(next http.Handler) http.Handler {
			next = rules.HTTPMiddleware(next)
			if outer != nil {
				next = outer(next)
			}
			return next
		}
	}
	h.GRPCServerOptions = append(h.GRPCServerOptions, rules.GRPCServerOptions()...)
	if rules.HTTPActive() || rules.GRPCActive() {
		log.Info("API allow/deny lists in effect", "allowed", len(api.Allowed), "denied", len(api.Denied))
	}
	return h, nil
}
