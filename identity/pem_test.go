package identity

import (
	"bytes"
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

type pemCase struct {
	name    string
	data    []byte
	want    int    // certificates returned
	wantErr string // part of the error; "" for none
}

// pemCases are ParseCertificates' table, also the seeds of its fuzz target.
func pemCases(tb testing.TB) []pemCase {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "root"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	other := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte("not looked at")})
	bad := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")})
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	return []pemCase{
		{"one", cert, 1, ""},
		{"two around another block", cat(cert, other, cert), 2, ""},
		{"text around", cat([]byte("# anchors\n"), cert, []byte("trailing\n")), 1, ""},
		{"no certificate", other, 0, "no PEM CERTIFICATE"},
		{"empty", nil, 0, "no PEM CERTIFICATE"},
		{"a broken second certificate", cat(cert, bad), 0, "certificate 2"},
		{"trailing bytes in the DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cat(der, []byte{0})}), 0, "certificate 1"},
	}
}

func TestParseCertificates(t *testing.T) {
	for _, c := range pemCases(t) {
		t.Run(c.name, func(t *testing.T) {
			certs, err := ParseCertificates(c.data)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil || len(certs) != c.want {
				t.Fatalf("%d certificates, err %v; want %d", len(certs), err, c.want)
			}
			if certs[0].SerialNumber.Int64() != 7 {
				t.Errorf("serial %v, want 7", certs[0].SerialNumber)
			}
		})
	}
}

// FuzzParseCertificates checks ParseCertificates against what the PEM input
// holds: it fails exactly when there is no CERTIFICATE block or one of them
// is not a certificate, returns one certificate per block, in order, with
// the block's bytes, and parses its own output back to the same list.
func FuzzParseCertificates(f *testing.F) {
	for _, c := range pemCases(f) {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificates(data)
		var blocks [][]byte
		for rest := data; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type == "CERTIFICATE" {
				blocks = append(blocks, b.Bytes)
			}
		}
		if err != nil {
			if certs != nil {
				t.Fatalf("error %v with %d certificates", err, len(certs))
			}
			broken := len(blocks) == 0
			for _, b := range blocks {
				if _, perr := x509.ParseCertificate(b); perr != nil {
					broken = true
				}
			}
			if !broken {
				t.Fatalf("error %v, but all %d CERTIFICATE blocks parse", err, len(blocks))
			}
			return
		}
		if len(certs) == 0 || len(certs) != len(blocks) {
			t.Fatalf("%d certificates from %d CERTIFICATE blocks", len(certs), len(blocks))
		}
		var again []byte
		for i, c := range certs {
			if !bytes.Equal(c.Raw, blocks[i]) {
				t.Fatalf("certificate %d is not block %d's bytes", i+1, i+1)
			}
			again = append(again, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		back, err := ParseCertificates(again)
		if err != nil || len(back) != len(certs) {
			t.Fatalf("own output: %d certificates, %v; want %d", len(back), err, len(certs))
		}
		for i := range back {
			if !back[i].Equal(certs[i]) {
				t.Fatalf("own output: certificate %d differs", i+1)
			}
		}
	})
}
