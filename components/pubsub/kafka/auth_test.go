package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/pubsubtest"
	"github.com/tandemrun/tandem/internal/kafkatest"
)

// roundTrip publishes one message and waits for it on a subscription.
func roundTrip(t *testing.T, ps *PubSub) {
	t.Helper()
	topic := "auth-" + pubsubtest.RandomSuffix()
	var got sync.Map
	subscribe(t, t.Context(), ps, pubsub.SubscribeRequest{Topic: topic}, func(_ context.Context, m *pubsub.Message) error {
		got.Store(string(m.Data), true)
		return nil
	})
	if err := ps.Publish(t.Context(), &pubsub.PublishRequest{Topic: topic, Data: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the message", func() bool { _, ok := got.Load("hi"); return ok })
}

func initErr(props map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ps := New(nil)
	err := ps.Init(ctx, components.Metadata{Name: "kafka-auth", AppID: "app", Properties: props})
	_ = ps.Close()
	return err
}

// authType password: SASL PLAIN and SCRAM over plaintext (disableTls), and
// a wrong password refused at Init.
func TestSASL(t *testing.T) {
	for _, mech := range []struct{ broker, dapr string }{{"PLAIN", ""}, {"SCRAM-SHA-256", "SHA-256"}, {"SCRAM-SHA-512", "SHA-512"}} {
		t.Run(mech.broker, func(t *testing.T) {
			b := kafkatest.Start(t, "--sasl-user", "dapr", "--sasl-pass", "s3cret", "--sasl-mechanism", mech.broker)
			props := map[string]string{"authType": "password", "saslUsername": "dapr", "saslPassword": "s3cret",
				"saslMechanism": mech.dapr, "disableTls": "true"}
			roundTrip(t, open(t, b.Brokers, "sasl-"+pubsubtest.RandomSuffix(), props))
			props["brokers"], props["saslPassword"] = b.Brokers, "wrong"
			if err := initErr(props); err == nil {
				t.Fatal("Init with a wrong SASL password succeeded")
			}
		})
	}
}

// authType mtls: TLS with a client certificate the broker requires;
// without one (authType certificate: TLS with our CA only) the broker
// refuses the handshake.
func TestMTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey, caPEM := newCert(t, "test CA", nil, nil, true)
	_, _, serverPEM, serverKeyPEM := leaf(t, "localhost", ca, caKey)
	_, _, clientPEM, clientKeyPEM := leaf(t, "dapr-client", ca, caKey)
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b := kafkatest.Start(t, "--tls-cert", write("s.pem", serverPEM), "--tls-key", write("s.key", serverKeyPEM),
		"--tls-client-ca", write("ca.pem", caPEM))
	roundTrip(t, open(t, b.Brokers, "mtls-"+pubsubtest.RandomSuffix(), map[string]string{
		"authType": "mtls", "caCert": caPEM, "clientCert": clientPEM, "clientKey": clientKeyPEM,
	}))
	if err := initErr(map[string]string{"brokers": b.Brokers, "authType": "certificate", "caCert": caPEM}); err == nil {
		t.Fatal("Init without a client certificate succeeded against a broker that requires one")
	}
}

func newCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IsCA:         isCA, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{cn},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func leaf(t *testing.T, cn string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, string, string) {
	t.Helper()
	cert, key, certPEM := newCert(t, cn, ca, caKey, false)
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key, certPEM, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}
