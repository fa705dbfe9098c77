package scaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemrun/tandem/internal/loadreport"
)

// A Finder lists the metadata endpoints (base URLs, such as
// http://10.0.0.7:3501) of the sidecars of an app.
type Finder interface {
	Find(ctx context.Context, appID, namespace string) ([]string, error)
}

// FinderFunc adapts a func to Finder.
type FinderFunc func(ctx context.Context, appID, namespace string) ([]string, error)

// Find calls f.
func (f FinderFunc) Find(ctx context.Context, appID, namespace string) ([]string, error) {
	return f(ctx, appID, namespace)
}

// Static returns the same endpoints for every app: each is asked, and
// only the reports of the wanted app are used (self-hosted: the sidecars'
// --dapr-http-port or public port).
func Static(urls ...string) Finder {
	return FinderFunc(func(context.Context, string, string) ([]string, error) { return urls, nil })
}

// DNS resolves template, with {app} and {namespace} replaced, to the
// addresses of the app's pods and returns http://<address>:<port> for
// each. With the operator's headless Service the template is
// "{app}-dapr.{namespace}.svc.cluster.local" and port the sidecars' HTTP
// API port (3500), or their public port (3501) where it is served.
func DNS(template string, port int, r *net.Resolver) Finder {
	if r == nil {
		r = net.DefaultResolver
	}
	return FinderFunc(func(ctx context.Context, appID, namespace string) ([]string, error) {
		host := strings.NewReplacer("{app}", appID, "{namespace}", namespace).Replace(template)
		addrs, err := r.LookupHost(ctx, host)
		if err != nil {
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
				return nil, nil // no pods: scaled to zero
			}
			return nil, fmt.Errorf("look up the sidecars of %q at %s: %w", appID, host, err)
		}
		out := make([]string, len(addrs))
		for i, a := range addrs {
			out[i] = "http://" + net.JoinHostPort(a, strconv.Itoa(port))
		}
		return out, nil
	})
}

// Reader fetches the load reports of an app's sidecars.
type Reader struct {
	Finder Finder
	// Client makes the metadata calls; nil: a client with a 3 s timeout.
	Client *http.Client
	// APIToken, if set, is sent as dapr-api-token (for the sidecars' API
	// port when it is protected; the public port needs none).
	APIToken string
}

// Reports returns the reports of the sidecars of appID in namespace (""
// matches any). A sidecar that does not answer is left out, and its
// error joined to err: the reports of the others are still returned.
func (r *Reader) Reports(ctx context.Context, appID, namespace string) ([]loadreport.Report, error) {
	urls, err := r.Finder.Find(ctx, appID, namespace)
	if err != nil {
		return nil, err
	}
	var (
		mu   sync.Mutex
		out  []loadreport.Report
		errs []error
		wg   sync.WaitGroup
	)
	for _, u := range urls {
		wg.Go(func() {
			rep, err := r.fetch(ctx, u)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case rep.AppID == appID && (namespace == "" || rep.Namespace == "" || rep.Namespace == namespace):
				out = append(out, rep)
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// maxMetadataBody bounds a sidecar's metadata answer.
const maxMetadataBody = 4 << 20

func (r *Reader) fetch(ctx context.Context, base string) (loadreport.Report, error) {
	c := r.Client
	if c == nil {
		c = &http.Client{Timeout: 3 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v1.0/metadata", nil)
	if err != nil {
		return loadreport.Report{}, fmt.Errorf("sidecar %s: %w", base, err)
	}
	if r.APIToken != "" {
		req.Header.Set("dapr-api-token", r.APIToken)
	}
	resp, err := c.Do(req)
	if err != nil {
		return loadreport.Report{}, fmt.Errorf("sidecar %s: %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBody))
	if err != nil {
		return loadreport.Report{}, fmt.Errorf("sidecar %s: read metadata: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return loadreport.Report{}, fmt.Errorf("sidecar %s: metadata API answered %s: %.200s", base, resp.Status, body)
	}
	return parseMetadata(body)
}

// parseMetadata takes the load report out of a GET /v1.0/metadata body.
func parseMetadata(body []byte) (loadreport.Report, error) {
	var md struct {
		ID       string            `json:"id"`
		Extended map[string]string `json:"extended"`
	}
	if err := json.Unmarshal(body, &md); err != nil {
		return loadreport.Report{}, fmt.Errorf("metadata is not JSON: %w", err)
	}
	s, ok := md.Extended[loadreport.ExtendedKey]
	if !ok {
		return loadreport.Report{}, fmt.Errorf("app %q: the sidecar reports no %q (not a Tandem sidecar, or an older one)", md.ID, loadreport.ExtendedKey)
	}
	return loadreport.Parse(s)
}
