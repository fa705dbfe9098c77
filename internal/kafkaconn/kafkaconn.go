// Package kafkaconn reads Dapr's Kafka connection metadata (brokers,
// clientID, authType with SASL or TLS client certificates, initialOffset,
// maxMessageBytes, consumeRetryInterval, session and heartbeat timing) and
// turns it into franz-go client options: the part pubsub.kafka and
// bindings.kafka share.
//
// It imports nothing of ours: components pass their components.Metadata,
// which has the typed getters of the Metadata interface.
package kafkaconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Metadata is what Parse reads: a component's metadata with Dapr's typed
// getters (components.Metadata).
type Metadata interface {
	String(name, def string) string
	Int(name string, def int) (int, error)
	Bool(name string, def bool) (bool, error)
	Duration(name string, def time.Duration) (time.Duration, error)
}

// Auth types Dapr accepts in authType that Tandem serves.
const (
	AuthNone        = "none"
	AuthPassword    = "password"
	AuthMTLS        = "mtls"
	AuthCertificate = "certificate"
)

// PublishTimeout bounds how long a produced record may wait for the
// brokers, retries included.
const PublishTimeout = 15 * time.Second

// Config is a component's Kafka connection settings, with Dapr's names and
// defaults.
type Config struct {
	Brokers  []string // brokers (comma-separated, required)
	ClientID string   // clientID (default "tandem")
	// ConsumerGroup is consumerGroup, else consumerID (which the runtime
	// sets to the app ID), as in Dapr.
	ConsumerGroup string
	AuthType      string // authType: none, password, mtls, certificate (required, as in Dapr)
	SASLUsername  string // saslUsername
	SASLPassword  string // saslPassword
	// SASLMechanism is saslMechanism: "SHA-256", "SHA-512" (SCRAM), or
	// anything else for PLAIN, as in Dapr.
	SASLMechanism string
	// InitialOffsetOldest is initialOffset=oldest: a group with no committed
	// offset starts at the beginning instead of the end ("newest").
	InitialOffsetOldest bool
	// MaxMessageBytes is maxMessageBytes: the largest record batch the
	// producer sends (0: the client's default, 1 MB).
	MaxMessageBytes int
	// ConsumeRetryInterval is consumeRetryInterval: the first wait before a
	// failed handler is called again (bare numbers are milliseconds).
	ConsumeRetryInterval time.Duration
	// ConsumeRetryEnabled is consumeRetryEnabled (default true). When it
	// is false a record the app failed is not called again: the failure is
	// logged and the record settled, so its offset is committed with the
	// records after it, as Dapr's Kafka components move past it. (Dapr's
	// binding defaults it to false; Tandem's binding does not, so that a
	// failed record is never dropped unless the component asks for it.)
	ConsumeRetryEnabled bool
	HeartbeatInterval   time.Duration // heartbeatInterval (3s)
	SessionTimeout      time.Duration // sessionTimeout (10s)
	FetchMinBytes       int           // consumerFetchMin (1)
	FetchMaxBytes       int           // consumerFetchDefault: per partition (1 MiB)
	DisableTLS          bool          // disableTls
	SkipVerify          bool          // skipVerify
	CACert              string        // caCert (PEM)
	ClientCert          string        // clientCert (PEM, mtls)
	ClientKey           string        // clientKey (PEM, mtls)
	Version             string        // version: accepted and checked; the client negotiates versions itself
	EscapeHeaders       bool          // escapeHeaders: URL-escape delivered keys and header values
}

// Parse reads and checks the connection settings of the component name;
// defGroup is the consumer group when neither consumerGroup nor
// consumerID is set (the app ID).
func Parse(name, defGroup string, md Metadata) (Config, error) {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("component %q: metadata %q: %s", name, field, fmt.Sprintf(format, args...))
	}
	c := Config{
		ClientID:      md.String("clientID", "tandem"),
		ConsumerGroup: md.String("consumerGroup", md.String("consumerID", defGroup)),
		AuthType:      strings.ToLower(strings.TrimSpace(md.String("authType", ""))),
		SASLUsername:  md.String("saslUsername", ""),
		SASLPassword:  md.String("saslPassword", ""),
		SASLMechanism: md.String("saslMechanism", ""),
		CACert:        md.String("caCert", ""),
		ClientCert:    md.String("clientCert", ""),
		ClientKey:     md.String("clientKey", ""),
		Version:       md.String("version", ""),
	}
	for _, b := range strings.Split(md.String("brokers", ""), ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.Brokers = append(c.Brokers, b)
		}
	}
	if len(c.Brokers) == 0 {
		return c, bad("brokers", "is required, e.g. localhost:9092")
	}
	if c.AuthType == "" {
		// Dapr's deprecated authRequired still decides when authType is
		// missing.
		req, err := md.Bool("authRequired", false)
		if err != nil {
			return c, err
		}
		switch {
		case md.String("authRequired", "") == "":
			return c, bad("authType", "is required: none, password, mtls or certificate")
		case !req:
			c.AuthType = AuthNone
		case c.SASLPassword != "":
			c.AuthType = AuthPassword
		default:
			c.AuthType = AuthMTLS
		}
	}
	var err error
	switch v := strings.ToLower(md.String("initialOffset", "newest")); v {
	case "newest":
	case "oldest":
		c.InitialOffsetOldest = true
	default:
		return c, bad("initialOffset", "%q is not newest or oldest", v)
	}
	if c.MaxMessageBytes, err = md.Int("maxMessageBytes", 0); err != nil {
		return c, err
	}
	if c.MaxMessageBytes < 0 {
		return c, bad("maxMessageBytes", "must not be negative")
	}
	// A bare number is milliseconds here (Dapr's rule for this field only).
	if v := strings.TrimSpace(md.String("consumeRetryInterval", "")); v != "" {
		if ms, err := strconv.ParseUint(v, 10, 32); err == nil {
			c.ConsumeRetryInterval = time.Duration(ms) * time.Millisecond
		} else if c.ConsumeRetryInterval, err = time.ParseDuration(v); err != nil {
			return c, bad("consumeRetryInterval", "%q is not a duration like 200ms", v)
		}
	}
	if c.ConsumeRetryInterval <= 0 {
		c.ConsumeRetryInterval = 100 * time.Millisecond
	}
	if c.ConsumeRetryEnabled, err = md.Bool("consumeRetryEnabled", true); err != nil {
		return c, err
	}
	if c.HeartbeatInterval, err = md.Duration("heartbeatInterval", 3*time.Second); err != nil {
		return c, err
	}
	if c.SessionTimeout, err = md.Duration("sessionTimeout", 10*time.Second); err != nil {
		return c, err
	}
	if c.HeartbeatInterval <= 0 || c.SessionTimeout <= 0 || c.HeartbeatInterval >= c.SessionTimeout {
		return c, bad("heartbeatInterval", "must be positive and shorter than sessionTimeout")
	}
	if c.FetchMinBytes, err = md.Int("consumerFetchMin", 1); err != nil {
		return c, err
	}
	if c.FetchMaxBytes, err = md.Int("consumerFetchDefault", 1<<20); err != nil {
		return c, err
	}
	if c.FetchMinBytes < 1 || c.FetchMaxBytes < 1 || c.FetchMinBytes > 1<<30 || c.FetchMaxBytes > 1<<30 {
		return c, bad("consumerFetchMin", "consumerFetchMin and consumerFetchDefault must be between 1 and 2^30")
	}
	if c.DisableTLS, err = md.Bool("disableTls", false); err != nil {
		return c, err
	}
	if c.SkipVerify, err = md.Bool("skipVerify", false); err != nil {
		return c, err
	}
	if c.EscapeHeaders, err = md.Bool("escapeHeaders", false); err != nil {
		return c, err
	}
	if c.Version != "" && !validVersion(c.Version) {
		return c, bad("version", "%q is not a Kafka version like 2.0.0", c.Version)
	}
	if c.CACert != "" && !isPEM(c.CACert) {
		return c, bad("caCert", "is not a PEM certificate")
	}
	switch c.AuthType {
	case AuthNone:
	case AuthPassword:
		if c.SASLUsername == "" || c.SASLPassword == "" {
			return c, bad("saslUsername", "saslUsername and saslPassword are required for authType password")
		}
	case AuthMTLS:
		if c.DisableTLS {
			return c, bad("disableTls", "cannot be true with authType mtls")
		}
		if (c.ClientCert == "") != (c.ClientKey == "") {
			return c, bad("clientCert", "clientCert and clientKey go together")
		}
		if c.ClientCert != "" && (!isPEM(c.ClientCert) || !isPEM(c.ClientKey)) {
			return c, bad("clientCert", "clientCert or clientKey is not PEM")
		}
	case AuthCertificate:
		if c.CACert == "" {
			return c, bad("caCert", "is required for authType certificate")
		}
	case "oidc", "awsiam":
		return c, bad("authType", "%q is not supported by Tandem yet; use none, password, mtls or certificate", c.AuthType)
	default:
		return c, bad("authType", "%q is not none, password, mtls or certificate", c.AuthType)
	}
	return c, nil
}

// validVersion accepts Dapr's version strings: 2 to 4 dot-separated numbers.
func validVersion(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) < 2 || len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return false
		}
	}
	return true
}

func isPEM(s string) bool {
	b, _ := pem.Decode([]byte(s))
	return b != nil
}

// TLS is the client TLS configuration, nil for plaintext: as in Dapr,
// authType none and disableTls mean plaintext, everything else TLS (system
// roots unless caCert is set).
func (c Config) TLS() (*tls.Config, error) {
	if c.DisableTLS || c.AuthType == AuthNone {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.SkipVerify} //nolint:gosec // skipVerify is the user's explicit choice
	if c.CACert != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(c.CACert)) {
			return nil, errors.New("caCert: no certificate could be read")
		}
		tc.RootCAs = pool
	}
	if c.AuthType == AuthMTLS && c.ClientCert != "" {
		cert, err := tls.X509KeyPair([]byte(c.ClientCert), []byte(c.ClientKey))
		if err != nil {
			return nil, fmt.Errorf("clientCert/clientKey: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// SASL is the SASL mechanism for authType password, nil otherwise.
func (c Config) SASL() sasl.Mechanism {
	if c.AuthType != AuthPassword {
		return nil
	}
	auth := scram.Auth{User: c.SASLUsername, Pass: c.SASLPassword}
	switch strings.ToUpper(c.SASLMechanism) {
	case "SHA-256", "SCRAM-SHA-256":
		return auth.AsSha256Mechanism()
	case "SHA-512", "SCRAM-SHA-512":
		return auth.AsSha512Mechanism()
	default:
		return plain.Auth{User: c.SASLUsername, Pass: c.SASLPassword}.AsMechanism()
	}
}

// Options are the client options every client of the component uses:
// brokers, client ID, TLS, SASL, producer limits, and auto-created topics
// (Kafka's default; the broker decides whether it allows it).
func (c Config) Options() ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.AllowAutoTopicCreation(),
		kgo.FetchMinBytes(int32(c.FetchMinBytes)),
		kgo.FetchMaxPartitionBytes(int32(c.FetchMaxBytes)),
		// A produce waits for the in-sync replicas: a published message
		// survives a broker failure, as with Dapr's WaitForAll.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// A publish to brokers that are down fails after this instead of
		// waiting for them forever (the client's default).
		kgo.RecordDeliveryTimeout(PublishTimeout),
		kgo.RecordPartitioner(Partitioner()),
		// Every publish waits for its acknowledgement, so lingering to
		// fill a batch only adds latency (franz-go's default is 10 ms, the
		// whole of a publish's p50 on a local broker); records that arrive
		// while a produce request is in flight are still batched, as with
		// Dapr's sarama producer, which sends at once.
		kgo.ProducerLinger(0),
	}
	if c.MaxMessageBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(int32(c.MaxMessageBytes)))
	}
	tc, err := c.TLS()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := c.SASL(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// GroupOptions are the consumer group options for group: Dapr's session
// and heartbeat timing, the initial offset, and commits only of offsets
// the caller marked (kgo.AutoCommitMarks) once the app acknowledged them.
func (c Config) GroupOptions(group string) []kgo.Opt {
	reset := kgo.NewOffset().AtEnd()
	if c.InitialOffsetOldest {
		reset = kgo.NewOffset().AtStart()
	}
	return []kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.SessionTimeout(c.SessionTimeout),
		kgo.HeartbeatInterval(c.HeartbeatInterval),
		kgo.ConsumeResetOffset(reset),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
	}
}

// Ping connects to a broker and asks for the cluster's metadata, so that
// Init reports a broker that cannot be reached (or refuses the credentials).
func Ping(ctx context.Context, cl *kgo.Client) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	return cl.Ping(ctx)
}
