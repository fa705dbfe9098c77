package observe

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// APILogOptions configure API logging (--enable-api-logging and
// Configuration logging.apiLogging).
type APILogOptions struct {
	Log *slog.Logger
	// ObfuscateURLs logs the route template ("/v1.0/invoke/{id}/method/
	// {method}") instead of the path, and no query string.
	ObfuscateURLs bool
	// OmitHealthChecks skips /v1.0/healthz calls.
	OmitHealthChecks bool
}

// APILogger writes one structured line per API call. Header values, query
// values and bodies are never logged: they carry tokens and secrets.
type APILogger struct {
	log       *slog.Logger
	obfuscate bool
	omitHC    bool
}

// NewAPILogger returns an APILogger writing to o.Log at level Info, with
// messages "HTTP API Called" and "gRPC API Called" as Dapr's.
func NewAPILogger(o APILogOptions) *APILogger {
	l := o.Log
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &APILogger{log: l, obfuscate: o.ObfuscateURLs, omitHC: o.OmitHealthChecks}
}

func isHealthCheck(path string) bool {
	return path == "/v1.0/healthz" || strings.HasPrefix(path, "/v1.0/healthz/")
}

// HTTPMiddleware logs each HTTP API request after it completed.
func (a *APILogger) HTTPMiddleware(next http.Handler) http.Handler {
	if a == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.omitHC && isHealthCheck(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec, own := recorderFor(w)
		next.ServeHTTP(rec, r)
		st := rec.Status()
		if own {
			rec.release()
		}
		path := r.URL.Path
		attrs := make([]slog.Attr, 0, 6)
		attrs = append(attrs, slog.String("method", r.Method))
		if a.obfuscate {
			if name := endpointName(path); name != "" {
				attrs = append(attrs, slog.String("endpoint", name))
			}
			path = routeTemplate(path)
		} else if keys := queryKeys(r.URL.RawQuery); keys != "" {
			path += "?" + keys
		}
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "HTTP API Called", append(attrs,
			slog.String("path", path),
			slog.Int("code", st),
			slog.String("duration", time.Since(start).String()),
			slog.String("useragent", r.UserAgent()))...)
	})
}

// queryKeys lists the query parameter names with their values removed
// ("metadata.ttlInSeconds=&consistency=").
func queryKeys(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return "(unparsable query)"
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k+"=")
	}
	sort.Strings(keys)
	return strings.Join(keys, "&")
}

// routeTemplate replaces the user-chosen segments of Dapr API paths with
// their names.
// endpointName is how daprd names an obfuscated call to the invoke API:
// "InvokeService/<app ID>", which keeps the target app and hides the method;
// empty for other paths.
func endpointName(path string) string {
	rest, ok := strings.CutPrefix(path, "/v1.0/invoke/")
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "/")
	return "InvokeService/" + id
}

func routeTemplate(path string) string {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	if len(parts) < 2 {
		return path
	}
	names := map[string][]string{
		"invoke":        {"{id}", "method", "{method}"},
		"state":         {"{storeName}", "{key}"},
		"secrets":       {"{secretStoreName}", "{key}"},
		"publish":       {"{pubsubname}", "{topic}"},
		"bindings":      {"{name}"},
		"configuration": {"{storeName}"},
		"lock":          {"{storeName}"},
		"unlock":        {"{storeName}"},
		"actors":        {"{actorType}", "{actorId}", "{kind}", "{name}"},
		"metadata":      {"{key}"},
	}
	tmpl, ok := names[parts[1]]
	if !ok {
		return path
	}
	out := parts[:2]
	for i, p := range parts[2:] {
		if i < len(tmpl) {
			if strings.HasPrefix(tmpl[i], "{") {
				out = append(out, tmpl[i])
			} else {
				out = append(out, p)
			}
			continue
		}
		if strings.HasPrefix(tmpl[len(tmpl)-1], "{") {
			break // the rest belongs to the last variable ({method} may hold slashes)
		}
		out = append(out, p)
	}
	return "/" + strings.Join(out, "/")
}

func (a *APILogger) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	a.logRPC(ctx, info.FullMethod, err, start)
	return resp, err
}

func (a *APILogger) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	a.logRPC(ss.Context(), info.FullMethod, err, start)
	return err
}

func (a *APILogger) logRPC(ctx context.Context, method string, err error, start time.Time) {
	if a.omitHC && strings.HasSuffix(method, "/Healthz") {
		return
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "gRPC API Called",
		slog.String("method", method),
		slog.String("code", status.Code(err).String()),
		slog.String("duration", time.Since(start).String()))
}

// GRPCServerOptions log each call to the public gRPC API.
func (a *APILogger) GRPCServerOptions() []grpc.ServerOption {
	if a == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.unary),
		grpc.ChainStreamInterceptor(a.stream),
	}
}
