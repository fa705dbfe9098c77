package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/appchannel"
	"github.com/tandemrun/tandem/proxy/apphealth"
)

// AppConfig says how a sidecar reaches its app.
type AppConfig struct {
	Port           int    // 0: no app
	Protocol       string // http (default), https, h2c, grpc, grpcs
	ChannelAddress string
	APIToken       string // APP_API_TOKEN, sent with every call to the app
	// MaxRequestBodySize bounds gRPC messages to the app (bytes; 0 =
	// default); ReadBufferSize bounds the HTTP app's response headers.
	MaxRequestBodySize int64
	ReadBufferSize     int
	// Pipeline, if set, is the Configuration's spec.appHttpPipeline, run
	// around every call to an HTTP app.
	Pipeline appchannel.Pipeline
	// InProcess, if set, is an app inside the sidecar (a Wasm app,
	// proxy/wasmhost), called with no socket; Port is then unused.
	InProcess InProcessApp
}

// InProcessApp is an app the sidecar hosts: an HTTP handler, and what
// /v1.0/metadata reports of it (extended fields).
type InProcessApp interface {
	http.Handler
	Extended() map[string]string
}

// App is the channel to a sidecar's app. The binary's root builds it once
// and hands it to the invoker (calls an app makes to itself) and to the
// Sidecar (the internal server, pub/sub deliveries); the root closes it
// after the Sidecar has stopped.
type App struct {
	cfg AppConfig
	// HTTP or GRPC is set, by the protocol; neither when there is no app.
	HTTP *appchannel.HTTP
	GRPC *appchannel.GRPC
	// health, when set (CheckHealth), gates calls to the app.
	health *apphealth.Checker
}

// NewApp builds the channel to the app (it does not connect yet).
func NewApp(c AppConfig) (*App, error) {
	a := &App{cfg: c}
	if c.InProcess != nil {
		if c.Protocol != "" && c.Protocol != "http" {
			return nil, fmt.Errorf("--app-protocol %q: an app inside the sidecar speaks http", c.Protocol)
		}
		var err error
		a.HTTP, err = appchannel.NewHTTP(appchannel.HTTPConfig{APIToken: c.APIToken, Pipeline: c.Pipeline, Handler: c.InProcess})
		return a, err
	}
	if c.Port == 0 {
		return a, nil
	}
	var err error
	switch c.Protocol {
	case "", "http", "https", "h2c":
		a.HTTP, err = appchannel.NewHTTP(appchannel.HTTPConfig{
			Address: c.ChannelAddress, Port: c.Port, Protocol: c.Protocol,
			APIToken: c.APIToken, MaxResponseHeaderBytes: int64(c.ReadBufferSize), Pipeline: c.Pipeline,
		})
	case "grpc", "grpcs":
		a.GRPC, err = appchannel.NewGRPC(appchannel.GRPCConfig{
			Address: c.ChannelAddress, Port: c.Port, Protocol: c.Protocol,
			APIToken: c.APIToken, MaxMessageSize: int(c.MaxRequestBodySize),
		})
	default:
		return nil, fmt.Errorf("unknown --app-protocol %q: use http, https, h2c, grpc or grpcs", c.Protocol)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// Channel is the app as the invoker sees it; nil when there is no app.
// With health probes on (CheckHealth) it refuses calls while the app is
// unhealthy.
func (a *App) Channel() invoke.AppChannel {
	var ch invoke.AppChannel
	switch {
	case a == nil:
		return nil
	case a.HTTP != nil:
		ch = a.HTTP
	case a.GRPC != nil:
		ch = a.GRPC
	default:
		return nil
	}
	if a.health != nil {
		return healthGated{next: ch, health: a.health}
	}
	return ch
}

// healthChecker is the app's health checker; nil: no probes.
func (a *App) healthChecker() *apphealth.Checker {
	if a == nil {
		return nil
	}
	return a.health
}

// Close releases the app's connections.
func (a *App) Close() error {
	switch {
	case a == nil:
		return nil
	case a.HTTP != nil:
		return a.HTTP.Close()
	case a.GRPC != nil:
		return a.GRPC.Close()
	}
	return nil
}

// api is the app channel as the building-block APIs see it.
func (a *App) api() api.App {
	if a == nil {
		return api.App{}
	}
	return api.App{HTTP: a.HTTP, GRPC: a.GRPC}
}

// orNone answers invocations addressed to this app when there is none.
func (a *App) orNone() invoke.AppChannel {
	if ch := a.Channel(); ch != nil {
		return ch
	}
	return noApp{}
}

// noApp answers invocations when the sidecar runs without an app.
type noApp struct{}

func (noApp) Invoke(context.Context, *invoke.Request) (*invoke.Response, error) {
	return nil, errNoApp
}

var errNoApp = errors.New("this sidecar has no app (started without --app-port)")
