package mysql

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

var configCases = []struct {
	name    string
	props   map[string]string
	wantErr string
}{
	{"missing connection string", map[string]string{}, "connectionString is required"},
	{"defaults", map[string]string{"connectionString": "root@tcp(db:3306)/"}, ""},
	{"not a dsn", map[string]string{"connectionString": "root@db:3306"}, "not a MySQL DSN"},
	{"database in dsn", map[string]string{"connectionString": "root@tcp(db:3306)/mydb"}, "set schemaName"},
	{"bad table", map[string]string{"connectionString": "root@tcp(db:3306)/", "tableName": "a; drop"}, "tableName"},
	{"bad schema", map[string]string{"connectionString": "root@tcp(db:3306)/", "schemaName": "s.t"}, "schemaName"},
	{"bad metadata table", map[string]string{"connectionString": "root@tcp(db:3306)/", "metadataTableName": strings.Repeat("m", 65)}, "metadataTableName"},
	{"bad timeout", map[string]string{"connectionString": "root@tcp(db:3306)/", "timeoutInSeconds": "5s"}, "not an integer"},
	{"bad cleanup", map[string]string{"connectionString": "root@tcp(db:3306)/", "cleanupInterval": "often"}, "not a duration"},
	{"missing pem", map[string]string{"connectionString": "root@tcp(db:3306)/?tls=custom", "pemPath": "/nonexistent.pem"}, "pemPath"},
	{"custom tls without pem", map[string]string{"connectionString": "root@tcp(db:3306)/?tls=custom"}, "not a MySQL DSN"},
}

func TestConfig(t *testing.T) {
	for _, tc := range configCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig(components.Metadata{Name: "my", Properties: tc.props})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestConfigValues(t *testing.T) {
	c, err := parseConfig(components.Metadata{Name: "my", Properties: map[string]string{"connectionString": "root@tcp(db:3306)/"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.schemaName != "dapr_state_store" || c.tableName != "state" || c.metadataTableName != "dapr_metadata" ||
		c.timeout != 20*time.Second || c.cleanupInterval != time.Hour || c.server.Addr != "db:3306" {
		t.Errorf("defaults = %+v", c)
	}
	c, err = parseConfig(components.Metadata{Name: "my", Properties: map[string]string{
		"connectionString": "u:p@tcp(db:3306)/?timeout=3s", "schemaName": "s", "tableName": "t", "metadataTableName": "m",
		"timeoutInSeconds": "7", "cleanupInterval": "0",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.schemaName != "s" || c.tableName != "t" || c.metadataTableName != "m" || c.timeout != 7*time.Second ||
		c.cleanupInterval != 0 || c.server.User != "u" || c.server.Timeout != 3*time.Second {
		t.Errorf("set = %+v", c)
	}
}

// TestConfigPEM: pemPath puts its CA into this component's connection, and
// the DSN's tls=custom is served by it.
func TestConfigPEM(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseConfig(components.Metadata{Name: "my", Properties: map[string]string{
		"connectionString": "root@tcp(db:3306)/?tls=custom&timeout=3s", "pemPath": path,
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c.server.TLS == nil || c.server.TLS.RootCAs == nil || c.server.Timeout != 3*time.Second {
		t.Fatalf("tls = %+v, timeout %v; want the CA of pemPath and the other options kept", c.server.TLS, c.server.Timeout)
	}
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	_ = os.WriteFile(notPEM, []byte("nothing"), 0o600)
	if _, err := parseConfig(components.Metadata{Name: "my", Properties: map[string]string{
		"connectionString": "root@tcp(db:3306)/", "pemPath": notPEM,
	}}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("err = %v, want no PEM certificate", err)
	}
}

func TestWithoutTLSCustom(t *testing.T) {
	for in, want := range map[string]string{
		"u@tcp(h)/":                        "u@tcp(h)/",
		"u@tcp(h)/?tls=custom":             "u@tcp(h)/",
		"u@tcp(h)/?a=1&tls=custom&b=2":     "u@tcp(h)/?a=1&b=2",
		"u@tcp(h)/?tls=true":               "u@tcp(h)/?tls=true",
		"u@tcp(h)/?tls=%63ustom&x=y":       "u@tcp(h)/?x=y",
		"u:p?w/x@tcp(h)/?tls=custom":       "u:p?w/x@tcp(h)/",
		"u:p?tls=custom@tcp(h)/":           "u:p?tls=custom@tcp(h)/",
		"u@tcp(h)/?allowNativePasswords=1": "u@tcp(h)/?allowNativePasswords=1",
	} {
		if got := withoutTLSCustom(in); got != want {
			t.Errorf("withoutTLSCustom(%q) = %q, want %q", in, got, want)
		}
	}
}

// metadataNames are the properties parseConfig reads.
var metadataNames = []string{"cleanupInterval", "connectionString", "metadataTableName", "pemPath", "schemaName", "tableName", "timeoutInSeconds"}

// FuzzParseConfig: see metadatafuzz.Run; a parsed configuration has a
// server without a database, names safe to put in SQL and a timeout.
func FuzzParseConfig(f *testing.F) {
	var seeds []map[string]string
	for _, c := range configCases {
		seeds = append(seeds, c.props)
	}
	metadatafuzz.Run(f, "fuzzed", metadataNames, seeds, func(p map[string]string) (config, error) {
		return parseConfig(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(c config) error {
		if c.server == nil || c.server.DBName != "" || !validIdentifier(c.schemaName) || !validIdentifier(c.tableName) ||
			!validIdentifier(c.metadataTableName) || c.timeout <= 0 {
			return errors.New("server, names or timeout out of range")
		}
		return nil
	})
}
