package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestParseCertificates(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "root"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	other := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("not looked at")})

	certs, err := ParseCertificates(append(append(append([]byte{}, cert...), other...), cert...))
	if err != nil || len(certs) != 2 || certs[1].SerialNumber.Int64() != 7 {
		t.Fatalf("two certificates around another block: %d, %v", len(certs), err)
	}
	if _, err := ParseCertificates(other); err == nil || !strings.Contains(err.Error(), "no PEM CERTIFICATE") {
		t.Errorf("no certificate: %v", err)
	}
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})
	if _, err := ParseCertificates(append(append([]byte{}, cert...), bad...)); err == nil || !strings.Contains(err.Error(), "certificate 2") {
		t.Errorf("a broken second certificate: %v", err)
	}
}
