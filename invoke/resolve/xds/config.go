package xds

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/tandemrun/tandem/invoke/resolve/internal/conf"
)

// DefaultTimeout is how long the first lookup of an app waits for the
// server's answer when the configuration does not say. The server answers
// in milliseconds; the wait only matters for an app it does not know.
const DefaultTimeout = 2 * time.Second

// DefaultUnsubscribeAfter is how long an app goes without a lookup before
// the resolver stops subscribing to its endpoints, when the configuration
// does not say.
const DefaultUnsubscribeAfter = 10 * time.Minute

// Options is the decoded spec.nameResolution.configuration.
type Options struct {
	// Server is the xDS server's host:port.
	Server string
	// ServerID, if set, is the only SPIFFE ID accepted from the server;
	// otherwise any ID of ours whose last path segment is dapr-xds
	// (`tandem xds`) or dapr-operator (operator --xds-port).
	ServerID spiffeid.ID
	// Insecure talks plaintext to the server (a `tandem xds` without
	// --sentry-address); otherwise mTLS with the sidecar's own SVID.
	Insecure bool
	// Timeout bounds the wait of an app's first lookup for the server's
	// answer (DefaultTimeout).
	Timeout time.Duration
	// UnsubscribeAfter: an app not looked up for this long is unsubscribed
	// from, so the server stops pushing its changes to this sidecar; the next
	// lookup subscribes again (DefaultUnsubscribeAfter; 0 never
	// unsubscribes).
	UnsubscribeAfter time.Duration
}

// ParseOptions reads the configuration map. Keys the resolvers package
// uses around this one (registry) are left alone.
func ParseOptions(m map[string]any) (Options, error) {
	c := conf.Map(m)
	var o Options
	var err error
	if o.Server, err = c.String("", "server", "address"); err != nil {
		return o, err
	}
	o.Server = strings.TrimSpace(o.Server)
	if o.Server == "" {
		return o, errors.New(`configuration "server" is required: the xDS server's host:port (tandem xds --port, operator --xds-port)`)
	}
	if _, port, err := net.SplitHostPort(o.Server); err != nil || port == "" {
		return o, fmt.Errorf("configuration \"server\": %q is not host:port", o.Server)
	}
	id, err := c.String("", "serverID", "serverSpiffeID")
	if err != nil {
		return o, err
	}
	if id = strings.TrimSpace(id); id != "" {
		if o.ServerID, err = spiffeid.FromString(id); err != nil {
			return o, fmt.Errorf("configuration \"serverID\": %q: %w", id, err)
		}
	}
	if o.Insecure, err = c.Bool(false, "insecure", "plaintext"); err != nil {
		return o, err
	}
	if o.Timeout, err = c.Duration(DefaultTimeout, "timeout"); err != nil {
		return o, err
	}
	if o.Timeout <= 0 {
		return o, fmt.Errorf("configuration \"timeout\": %v must be positive", o.Timeout)
	}
	if o.UnsubscribeAfter, err = c.Duration(DefaultUnsubscribeAfter, "unsubscribeAfter"); err != nil {
		return o, err
	}
	if o.UnsubscribeAfter < 0 {
		return o, fmt.Errorf("configuration \"unsubscribeAfter\": %v must not be negative (0 never unsubscribes)", o.UnsubscribeAfter)
	}
	return o, nil
}
