package kafka

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/kafkaconn"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

const testPEM = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUYQ==\n-----END CERTIFICATE-----\n"

var parseCases = []struct {
	name    string
	props   map[string]string
	check   func(c kafkaconn.Config) bool
	wantErr string
}{
	{"defaults", map[string]string{"brokers": "a:9092, b:9092", "authType": "none"}, func(c kafkaconn.Config) bool {
		return len(c.Brokers) == 2 && c.Brokers[1] == "b:9092" && c.ConsumerGroup == "app" && c.ClientID == "tandem" &&
			!c.InitialOffsetOldest && c.ConsumeRetryInterval == 100*time.Millisecond &&
			c.HeartbeatInterval == 3*time.Second && c.SessionTimeout == 10*time.Second && c.ConsumeRetryEnabled
	}, ""},
	{"consumeRetryEnabled false", map[string]string{"brokers": "a", "authType": "none", "consumeRetryEnabled": "false"}, func(c kafkaconn.Config) bool {
		return !c.ConsumeRetryEnabled
	}, ""},
	{"bad consumeRetryEnabled", map[string]string{"brokers": "a", "authType": "none", "consumeRetryEnabled": "sometimes"}, nil, "consumeRetryEnabled"},
	{"consumerID when no consumerGroup", map[string]string{"brokers": "a", "authType": "none", "consumerID": "cid"}, func(c kafkaconn.Config) bool {
		return c.ConsumerGroup == "cid"
	}, ""},
	{"consumerGroup wins", map[string]string{"brokers": "a", "authType": "none", "consumerID": "cid", "consumerGroup": "g"}, func(c kafkaconn.Config) bool {
		return c.ConsumerGroup == "g"
	}, ""},
	{"retry interval bare number is ms", map[string]string{"brokers": "a", "authType": "none", "consumeRetryInterval": "250", "initialOffset": "Oldest"}, func(c kafkaconn.Config) bool {
		return c.ConsumeRetryInterval == 250*time.Millisecond && c.InitialOffsetOldest
	}, ""},
	{"password", map[string]string{"brokers": "a", "authType": "password", "saslUsername": "u", "saslPassword": "p", "saslMechanism": "SHA-512"}, func(c kafkaconn.Config) bool {
		return c.SASL() != nil && c.SASL().Name() == "SCRAM-SHA-512"
	}, ""},
	{"password plain by default", map[string]string{"brokers": "a", "authType": "password", "saslUsername": "u", "saslPassword": "p"}, func(c kafkaconn.Config) bool {
		return c.SASL().Name() == "PLAIN"
	}, ""},
	{"authRequired with password", map[string]string{"brokers": "a", "authRequired": "true", "saslUsername": "u", "saslPassword": "p"}, func(c kafkaconn.Config) bool {
		return c.AuthType == kafkaconn.AuthPassword
	}, ""},
	{"authRequired false", map[string]string{"brokers": "a", "authRequired": "false"}, func(c kafkaconn.Config) bool {
		return c.AuthType == kafkaconn.AuthNone
	}, ""},
	{"mtls", map[string]string{"brokers": "a", "authType": "mtls", "clientCert": testPEM, "clientKey": testPEM}, nil, ""},
	{"no brokers", map[string]string{"authType": "none"}, nil, `"brokers"`},
	{"no authType", map[string]string{"brokers": "a"}, nil, `"authType"`},
	{"unknown authType", map[string]string{"brokers": "a", "authType": "kerberos"}, nil, `"authType"`},
	{"oidc not yet", map[string]string{"brokers": "a", "authType": "oidc"}, nil, "not supported"},
	{"password without user", map[string]string{"brokers": "a", "authType": "password", "saslPassword": "p"}, nil, "saslUsername"},
	{"mtls with disableTls", map[string]string{"brokers": "a", "authType": "mtls", "disableTls": "true"}, nil, "disableTls"},
	{"mtls cert without key", map[string]string{"brokers": "a", "authType": "mtls", "clientCert": testPEM}, nil, "clientKey"},
	{"certificate without caCert", map[string]string{"brokers": "a", "authType": "certificate"}, nil, "caCert"},
	{"bad caCert", map[string]string{"brokers": "a", "authType": "none", "caCert": "nope"}, nil, "caCert"},
	{"bad initialOffset", map[string]string{"brokers": "a", "authType": "none", "initialOffset": "middle"}, nil, "initialOffset"},
	{"bad retry interval", map[string]string{"brokers": "a", "authType": "none", "consumeRetryInterval": "soon"}, nil, "consumeRetryInterval"},
	{"heartbeat not below session", map[string]string{"brokers": "a", "authType": "none", "heartbeatInterval": "20s"}, nil, "heartbeatInterval"},
	{"bad version", map[string]string{"brokers": "a", "authType": "none", "version": "two"}, nil, "version"},
	{"negative maxMessageBytes", map[string]string{"brokers": "a", "authType": "none", "maxMessageBytes": "-1"}, nil, "maxMessageBytes"},
}

func parse(props map[string]string) (kafkaconn.Config, error) {
	md := components.Metadata{Name: "my-kafka", AppID: "app", Properties: props}
	return kafkaconn.Parse(md.Name, md.AppID, md)
}

func TestParseConfig(t *testing.T) {
	for _, tt := range parseCases {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse(tt.props)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), `"my-kafka"`) {
					t.Fatalf("err = %v, want one naming the component and %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil && !tt.check(c) {
				t.Errorf("config = %+v", c)
			}
		})
	}
}

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has
// brokers, a known auth type, a positive retry interval, and client options
// that build.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range parseCases {
		seeds = append(seeds, c.props)
	}
	metadatafuzz.Run(f, "my-kafka", metadataNames, seeds, parse, func(c kafkaconn.Config) error {
		switch {
		case len(c.Brokers) == 0:
			return errors.New("no brokers")
		case c.ConsumeRetryInterval <= 0:
			return errors.New("retry interval not positive")
		case c.AuthType != kafkaconn.AuthNone && c.AuthType != kafkaconn.AuthPassword && c.AuthType != kafkaconn.AuthMTLS && c.AuthType != kafkaconn.AuthCertificate:
			return errors.New("unknown auth type " + c.AuthType)
		}
		_, _ = c.Options() // TLS material may not load; it must not panic
		return nil
	})
}

// metadataNames are the properties kafkaconn.Parse reads.
var metadataNames = []string{"authRequired", "authType", "brokers", "caCert", "clientCert", "clientID", "clientKey",
	"consumeRetryEnabled", "consumeRetryInterval", "consumerFetchDefault", "consumerFetchMin", "consumerGroup", "consumerID",
	"disableTls", "escapeHeaders", "heartbeatInterval", "initialOffset", "maxMessageBytes", "saslMechanism", "saslPassword", "saslUsername",
	"sessionTimeout", "skipVerify", "version"}
