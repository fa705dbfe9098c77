// Package postgresql is the bindings.postgresql output binding: SQL on a
// PostgreSQL server with Dapr's operations exec (metadata sql and the
// optional JSON array params; the answer's rows-affected metadata), query
// (the rows as a JSON array of arrays) and close.
package postgresql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
)

// Type is the component's spec.type.
const Type = "bindings.postgresql"

// Dapr's defaults.
const defaultTimeout = 20 * time.Second

// config is the component's metadata, with Dapr's names and defaults.
type config struct {
	ConnectionString      string        // connectionString (alias url)
	Timeout               time.Duration // timeout (alias timeoutInSeconds)
	MaxConns              int           // maxConns; 0: pgx's default
	ConnectionMaxIdleTime time.Duration // connectionMaxIdleTime
	QueryExecMode         string        // queryExecMode
}

var execModes = map[string]pgx.QueryExecMode{
	"cache_statement": pgx.QueryExecModeCacheStatement,
	"cache_describe":  pgx.QueryExecModeCacheDescribe,
	"describe_exec":   pgx.QueryExecModeDescribeExec,
	"exec":            pgx.QueryExecModeExec,
	"simple_protocol": pgx.QueryExecModeSimpleProtocol,
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{ConnectionString: md.String("connectionString", md.String("url", "")), QueryExecMode: md.String("queryExecMode", "")}
	if c.ConnectionString == "" {
		return c, fmt.Errorf("component %q: metadata %q is required, e.g. \"host=localhost user=postgres dbname=dapr\" or a postgres:// URL", md.Name, "connectionString")
	}
	var err error
	name := "timeout"
	if _, ok := md.Get(name); !ok {
		name = "timeoutInSeconds"
	}
	if c.Timeout, err = md.Duration(name, defaultTimeout); err != nil {
		return c, err
	}
	if c.Timeout <= 0 {
		return c, fmt.Errorf("component %q: metadata %q must be positive", md.Name, name)
	}
	if c.MaxConns, err = md.Int("maxConns", 0); err != nil {
		return c, err
	}
	if c.MaxConns < 0 {
		return c, fmt.Errorf("component %q: metadata %q must not be negative", md.Name, "maxConns")
	}
	if c.ConnectionMaxIdleTime, err = md.Duration("connectionMaxIdleTime", 0); err != nil {
		return c, err
	}
	if c.QueryExecMode != "" {
		if _, ok := execModes[c.QueryExecMode]; !ok {
			return c, fmt.Errorf("component %q: metadata %q: %q is not one of cache_statement, cache_describe, describe_exec, exec, simple_protocol", md.Name, "queryExecMode", c.QueryExecMode)
		}
	}
	if _, err := pgxpool.ParseConfig(c.ConnectionString); err != nil {
		// pgx errors can echo the connection string, which may hold a password.
		return c, fmt.Errorf("component %q: metadata %q is malformed", md.Name, "connectionString")
	}
	return c, nil
}

// Binding is a PostgreSQL output binding.
type Binding struct {
	mu     sync.RWMutex
	db     *pgxpool.Pool
	closed bool
}

// New returns an uninitialised PostgreSQL binding.
func New() *Binding { return &Binding{} }

// Init connects to the server.
func (b *Binding) Init(ctx context.Context, md components.Metadata) error {
	c, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	pcfg, _ := pgxpool.ParseConfig(c.ConnectionString)
	if c.MaxConns > 0 {
		pcfg.MaxConns = int32(min(c.MaxConns, 1<<30))
	}
	if c.ConnectionMaxIdleTime > 0 {
		pcfg.MaxConnIdleTime = c.ConnectionMaxIdleTime
	}
	if c.QueryExecMode != "" {
		pcfg.ConnConfig.DefaultQueryExecMode = execModes[c.QueryExecMode]
	}
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	db, err := pgxpool.NewWithConfig(cctx, pcfg)
	if err != nil {
		return fmt.Errorf("component %q: connect to postgresql: %w", md.Name, err)
	}
	if err := db.Ping(cctx); err != nil {
		db.Close()
		return fmt.Errorf("component %q: connect to postgresql at %s:%d: %w (is the server up and the connectionString right?)", md.Name, pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, err)
	}
	b.mu.Lock()
	b.db = db
	b.mu.Unlock()
	return nil
}

// Operations lists exec, query and close.
func (b *Binding) Operations() []string {
	return []string{bindings.OperationExec, bindings.OperationQuery, bindings.OperationClose}
}

// Invoke runs one operation.
func (b *Binding) Invoke(ctx context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	if req.Operation == bindings.OperationClose {
		return nil, b.Close()
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed || b.db == nil {
		return nil, errors.New("component is closed")
	}
	sql := req.Metadata["sql"]
	if sql == "" {
		return nil, errors.New("required metadata not set: sql")
	}
	var args []any
	if p := req.Metadata["params"]; p != "" {
		if err := json.Unmarshal([]byte(p), &args); err != nil {
			return nil, fmt.Errorf("invalid metadata property params: failed to unserialize into an array: %w", err)
		}
	}
	start := time.Now().UTC()
	resp := &bindings.InvokeResponse{Metadata: map[string]string{
		"operation": req.Operation, "sql": sql, "start-time": start.Format(time.RFC3339Nano),
	}}
	switch req.Operation {
	case bindings.OperationExec:
		tag, err := b.db.Exec(ctx, sql, args...)
		if err != nil {
			return nil, fmt.Errorf("error executing query: %w", err)
		}
		resp.Metadata["rows-affected"] = strconv.FormatInt(tag.RowsAffected(), 10)
	case bindings.OperationQuery:
		data, err := query(ctx, b.db, sql, args)
		if err != nil {
			return nil, err
		}
		resp.Data = data
	default:
		return nil, fmt.Errorf("invalid operation type: %s. Expected %s", req.Operation, strings.Join(b.Operations(), ", "))
	}
	end := time.Now().UTC()
	resp.Metadata["end-time"] = end.Format(time.RFC3339Nano)
	resp.Metadata["duration"] = end.Sub(start).String()
	return resp, nil
}

func query(ctx context.Context, db *pgxpool.Pool, sql string, args []any) ([]byte, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("error executing query: %w", err)
	}
	defer rows.Close()
	out := make([]any, 0)
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, fmt.Errorf("error reading result: %w", err)
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("error executing query: %w", err)
	}
	return json.Marshal(out)
}

// Close closes the connection pool; it may be called more than once.
func (b *Binding) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.db != nil {
		b.db.Close()
		b.db = nil
	}
	return nil
}
