package mysql

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/tandemrun/tandem/components"
)

// Dapr's defaults for state.mysql.
const (
	defaultSchemaName        = "dapr_state_store"
	defaultTableName         = "state"
	defaultMetadataTableName = "dapr_metadata"
	defaultTimeout           = 20 * time.Second
	defaultCleanupInterval   = time.Hour
)

// tlsCustom is the tls value of a connection string that asks for the CA
// of pemPath, as in Dapr's docs ("...?tls=custom").
const tlsCustom = "custom"

type config struct {
	// server is the parsed connectionString, without a database: the
	// store creates schemaName on it first, then connects to that.
	server            *driver.Config
	schemaName        string
	tableName         string
	metadataTableName string
	timeout           time.Duration
	cleanupInterval   time.Duration // <= 0: disabled
}

// parseConfig reads Dapr's state.mysql metadata: connectionString (the Go
// driver's DSN, "user:password@tcp(host:3306)/?options", with no database:
// that is schemaName), schemaName, tableName, metadataTableName,
// timeoutInSeconds, cleanupInterval (0 or less: no sweep of expired rows)
// and pemPath (the CA for "tls=custom").
func parseConfig(md components.Metadata) (config, error) {
	c := config{
		schemaName:        md.String("schemaName", defaultSchemaName),
		tableName:         md.String("tableName", defaultTableName),
		metadataTableName: md.String("metadataTableName", defaultMetadataTableName),
		timeout:           defaultTimeout,
	}
	for _, id := range []struct{ field, value string }{
		{"schemaName", c.schemaName}, {"tableName", c.tableName}, {"metadataTableName", c.metadataTableName},
	} {
		if !validIdentifier(id.value) {
			return c, fmt.Errorf("component %q: metadata %s %q: use letters, digits and _ only, at most 64", md.Name, id.field, id.value)
		}
	}
	secs, err := md.Int("timeoutInSeconds", 0)
	if err != nil {
		return c, err
	}
	if secs > 0 {
		c.timeout = time.Duration(secs) * time.Second
	}
	if c.cleanupInterval, err = md.Duration("cleanupInterval", defaultCleanupInterval); err != nil {
		return c, err
	}
	dsn := md.String("connectionString", "")
	if dsn == "" {
		return c, fmt.Errorf("component %q: metadata connectionString is required, e.g. \"root:password@tcp(localhost:3306)/?allowNativePasswords=true\"", md.Name)
	}
	var rootCAs *x509.CertPool
	if pem := md.String("pemPath", ""); pem != "" {
		if rootCAs, err = readCAs(pem); err != nil {
			return c, fmt.Errorf("component %q: metadata pemPath: %w", md.Name, err)
		}
		// The driver resolves tls=custom in a registry of its own; the CA
		// goes into this component's connection instead.
		dsn = withoutTLSCustom(dsn)
	}
	if c.server, err = driver.ParseDSN(dsn); err != nil {
		// The driver's errors do not quote the connection string, which may
		// hold a password; this one does not either.
		return c, fmt.Errorf("component %q: metadata connectionString is not a MySQL DSN like \"user:password@tcp(host:3306)/\": %w", md.Name, err)
	}
	if c.server.DBName != "" {
		return c, fmt.Errorf("component %q: metadata connectionString names the database %q: leave it out (\"…@tcp(host:3306)/\") and set schemaName", md.Name, c.server.DBName)
	}
	// Conditional writes and the sweep's turn-taking read "rows changed";
	// clientFoundRows would make them "rows matched".
	c.server.ClientFoundRows = false
	if rootCAs != nil {
		c.server.TLS = &tls.Config{RootCAs: rootCAs, MinVersion: tls.VersionTLS12}
	}
	return c, nil
}

// readCAs reads a PEM file of CA certificates.
func readCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// withoutTLSCustom drops the option tls=custom from a DSN's query, which
// follows the last "/" (a password may hold "?" and "/" too).
func withoutTLSCustom(dsn string) string {
	slash := strings.LastIndex(dsn, "/")
	q := strings.Index(dsn[slash+1:], "?")
	if slash < 0 || q < 0 {
		return dsn
	}
	base, query := dsn[:slash+1+q], dsn[slash+1+q+1:]
	var kept []string
	for _, kv := range strings.Split(query, "&") {
		k, v, _ := strings.Cut(kv, "=")
		if u, err := url.QueryUnescape(v); k == "tls" && err == nil && u == tlsCustom {
			continue
		}
		kept = append(kept, kv)
	}
	if len(kept) == 0 {
		return base
	}
	return base + "?" + strings.Join(kept, "&")
}

// validIdentifier accepts the names Dapr accepts for schemas and tables:
// ASCII letters, digits and underscores, spliced into SQL unquoted. MySQL
// allows at most 64 characters.
func validIdentifier(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b != '_' && (b < '0' || b > '9') && (b < 'a' || b > 'z') && (b < 'A' || b > 'Z') {
			return false
		}
	}
	return true
}

var errNoConfig = errors.New("store not initialised: call Init first")
