package httpapi

import (
	"net/http"

	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/apierr"
)

func (h *Handler) healthz(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Ready != nil && !h.cfg.Ready() {
		apierr.WriteHTTP(w, apierr.HealthNotReady("still starting (waiting for components and the app port): retry, or check the sidecar log"))
		return
	}
	// Name resolvers (Consul) check they reached the right app.
	if q := r.URL.Query(); q.Has("appid") && q.Get("appid") != h.cfg.AppID {
		apierr.WriteHTTP(w, apierr.HealthAppIDNotMatch())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) healthzOutbound(w http.ResponseWriter, _ *http.Request) {
	if h.cfg.OutboundReady != nil && !h.cfg.OutboundReady() {
		apierr.WriteHTTP(w, apierr.OutboundHealthNotReady())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) shutdown(w http.ResponseWriter, r *http.Request) {
	if h.cfg.ForceShutdown != nil && api.IsForceShutdown(r.Header.Values(api.ForceShutdownKey)) {
		h.log.Warn(api.LogForceShutdown)
		go h.cfg.ForceShutdown()
	} else if h.cfg.Shutdown != nil {
		h.log.Info(api.LogShutdownRequested)
		go h.cfg.Shutdown()
	}
	w.WriteHeader(http.StatusNoContent)
}
