// Package oauth2clientcredentials is middleware.http.oauth2clientcredentials:
// it fetches a token with the OAuth2 client credentials grant (metadata
// clientID, clientSecret, scopes, tokenURL, endpointParamsQuery, authStyle,
// as in Dapr), keeps it until it expires, and adds it to each request as
// headerName: "<type> <token>" (only to paths matching pathFilter, when set).
package oauth2clientcredentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/middleware"
)

// Type is the spec.type.
const Type = "middleware.http.oauth2clientcredentials"

// fetchTimeout bounds one token request.
const fetchTimeout = 30 * time.Second

// Middleware is one oauth2clientcredentials component.
type Middleware struct {
	log        *slog.Logger
	name       string
	header     string
	pathFilter *regexp.Regexp
	tokens     oauth2.TokenSource
}

var _ middleware.Middleware = (*Middleware)(nil)

// New returns an uninitialised component.
func New(log *slog.Logger) func() middleware.Middleware {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func() middleware.Middleware { return &Middleware{log: log} }
}

// Init reads the metadata; the first token is fetched with the first
// request, as in Dapr.
func (m *Middleware) Init(_ context.Context, md components.Metadata) error {
	m.name = md.Name
	m.log = m.log.With("middleware", md.Name, "type", Type)
	var missing []string
	get := func(name string) string {
		v := md.String(name, "")
		if v == "" {
			missing = append(missing, name)
		}
		return v
	}
	m.header = get("headerName")
	cfg := &clientcredentials.Config{ClientID: get("clientID"), ClientSecret: get("clientSecret"), TokenURL: get("tokenURL")}
	scopes := get("scopes")
	if len(missing) > 0 {
		return components.Permanent(fmt.Errorf("metadata %s required", strings.Join(missing, ", ")))
	}
	cfg.Scopes = strings.Split(scopes, ",")
	if q := md.String("endpointParamsQuery", ""); q != "" {
		params, err := url.ParseQuery(q)
		if err != nil {
			return components.Permanent(fmt.Errorf("metadata endpointParamsQuery is not a query string: %w", err))
		}
		cfg.EndpointParams = params
	}
	if s := md.String("authStyle", ""); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 2 {
			return components.Permanent(fmt.Errorf("metadata authStyle is %q: use 0 (auto-detect), 1 (in parameters) or 2 (in header)", s))
		}
		cfg.AuthStyle = oauth2.AuthStyle(n)
	}
	if f := md.String("pathFilter", ""); f != "" {
		rx, err := regexp.Compile(f)
		if err != nil {
			return components.Permanent(fmt.Errorf("metadata pathFilter is not a valid regular expression: %w", err))
		}
		m.pathFilter = rx
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: fetchTimeout})
	m.tokens = oauth2.ReuseTokenSource(nil, cfg.TokenSource(ctx))
	return nil
}

// Handler implements middleware.Middleware.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.pathFilter != nil && !m.pathFilter.MatchString(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		tok, err := m.tokens.Token()
		if err != nil {
			// daprd answers nothing (an empty 200); the caller should know.
			m.log.Error("error acquiring token", "error", err)
			var re *oauth2.RetrieveError
			msg := err.Error()
			if errors.As(err, &re) {
				msg = fmt.Sprintf("the token endpoint answered %d", re.Response.StatusCode)
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_ = json.NewEncoder(w).Encode(map[string]string{"errorCode": "ERR_MIDDLEWARE_FAILED",
				"message": fmt.Sprintf("middleware %s (%s): acquiring a token: %s", m.name, Type, msg)})
			return
		}
		r.Header.Add(m.header, tok.Type()+" "+tok.AccessToken)
		next.ServeHTTP(w, r)
	})
}

// Close implements middleware.Middleware.
func (m *Middleware) Close() error { return nil }
