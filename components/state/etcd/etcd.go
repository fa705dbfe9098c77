// Package etcd is the state.etcd store: keys under keyPrefixPath in an etcd
// v3 cluster, ETags from each key's modification revision, TTLs as leases,
// transactions as one etcd transaction. spec.version picks the value
// layout, as in Dapr: v1 stores the value as it is; v2 (Dapr's advice for
// new stores) wraps it in a protobuf envelope with its write time and TTL,
// so reads report ttlExpireTime. The two layouts are not compatible.
package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

// Type is the component type.
const Type = "state.etcd"

// opTimeout bounds each call to etcd, as Dapr's store does.
const opTimeout = 5 * time.Second

// Store is a state.etcd store of one layout.
type Store struct {
	log       *slog.Logger
	layout    layout
	client    *clientv3.Client
	prefix    string
	maxTxnOps int
}

var (
	_ state.Store         = (*Store)(nil)
	_ state.Transactional = (*Store)(nil)
)

// New returns a v1 store (values stored as they are).
func New(log *slog.Logger) *Store { return newStore(log, layoutV1{}) }

// NewV2 returns a v2 store (values in Dapr's v2 envelope).
func NewV2(log *slog.Logger) *Store { return newStore(log, layoutV2{}) }

func newStore(log *slog.Logger, l layout) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log, layout: l}
}

// Versions are the store's spec.version values: v1 (the default) and v2.
func Versions(log *slog.Logger) components.Versions[state.Store] {
	return components.Versions[state.Store]{Default: "v1", New: map[string]func() state.Store{
		"v1": func() state.Store { return New(log) },
		"v2": func() state.Store { return NewV2(log) },
	}}
}

// Init reads Dapr's metadata (endpoints, keyPrefixPath, tlsEnable, ca,
// cert, key, maxTxnOps) and makes the client. As in Dapr, it does not wait
// for etcd: a cluster that is down fails the calls, not the start.
func (s *Store) Init(_ context.Context, md components.Metadata) error {
	var endpoints []string
	for _, e := range strings.Split(md.String("endpoints", ""), ",") {
		if e = strings.TrimSpace(e); e != "" {
			endpoints = append(endpoints, e)
		}
	}
	if len(endpoints) == 0 {
		return fmt.Errorf("component %q: metadata endpoints is required, e.g. \"localhost:2379\" (comma-separated)", md.Name)
	}
	maxOps, err := md.Int("maxTxnOps", 128)
	if err != nil || maxOps <= 0 {
		return fmt.Errorf("component %q: metadata maxTxnOps must be a positive integer (etcd's --max-txn-ops, 128 by default)", md.Name)
	}
	tlsOn, err := md.Bool("tlsEnable", false)
	if err != nil {
		return fmt.Errorf("component %q: metadata tlsEnable: %w", md.Name, err)
	}
	var tc *tls.Config
	if tlsOn {
		if tc, err = tlsConfig(md.String("ca", ""), md.String("cert", ""), md.String("key", "")); err != nil {
			return fmt.Errorf("component %q: %w", md.Name, err)
		}
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: opTimeout, TLS: tc})
	if err != nil {
		return fmt.Errorf("component %q: etcd client: %w", md.Name, err)
	}
	if s.client != nil {
		_ = s.client.Close()
	}
	s.client, s.prefix, s.maxTxnOps = client, md.String("keyPrefixPath", ""), maxOps
	return nil
}

// tlsConfig is the client TLS of metadata ca, cert and key (PEM): all three
// are needed, as in Dapr.
func tlsConfig(ca, cert, key string) (*tls.Config, error) {
	if ca == "" || cert == "" || key == "" {
		return nil, errors.New("tlsEnable is true: metadata ca, cert and key (PEM) are all required")
	}
	pair, err := tls.X509KeyPair([]byte(cert), []byte(key))
	if err != nil {
		return nil, fmt.Errorf("metadata cert and key: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ca)) {
		return nil, errors.New("metadata ca holds no PEM certificate")
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}, RootCAs: pool}, nil
}

// Features: ETags, transactions and TTLs.
func (s *Store) Features() []state.Feature {
	return []state.Feature{state.FeatureETag, state.FeatureTransactional, state.FeatureTTL}
}

// Close closes the client.
func (s *Store) Close() error {
	if s.client == nil {
		return nil
	}
	return s.client.Close()
}

func (s *Store) key(k string) string { return s.prefix + "/" + k }

// Get reads a key; its ETag is the key's modification revision.
func (s *Store) Get(ctx context.Context, req *state.GetRequest) (*state.GetResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	resp, err := s.client.Get(ctx, s.key(req.Key))
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", req.Key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	kv := resp.Kvs[0]
	data, md, err := s.layout.decode(kv.Value)
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", req.Key, err)
	}
	etag := strconv.FormatInt(kv.ModRevision, 10)
	if data == nil {
		data = []byte{}
	}
	return &state.GetResponse{Data: data, ETag: &etag, Metadata: md}, nil
}

// Set writes a key; with an ETag, or first-write without one, only if the
// key is as expected.
func (s *Store) Set(ctx context.Context, req *state.SetRequest) error {
	ops, cmps, err := s.put(ctx, req)
	if err != nil {
		return err
	}
	ok, err := s.commit(ctx, cmps, ops)
	if err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	if !ok {
		return state.SetConflict(req.Key, req.ETag)
	}
	return nil
}

// Delete removes a key; with an ETag only if it matches (a missing key
// never does).
func (s *Store) Delete(ctx context.Context, req *state.DeleteRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	cmps, err := s.etagCmp(req.Key, req.ETag)
	if err != nil {
		return err
	}
	ok, err := s.commit(ctx, cmps, []clientv3.Op{clientv3.OpDelete(s.key(req.Key))})
	if err != nil {
		return fmt.Errorf("delete %q: %w", req.Key, err)
	}
	if !ok {
		return fmt.Errorf("delete %q: %w", req.Key, state.ErrETagMismatch)
	}
	return nil
}

// Multi applies the operations in one etcd transaction: every ETag and
// first-write condition holds, or nothing is written.
func (s *Store) Multi(ctx context.Context, req *state.TransactionRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if len(req.Operations) == 0 {
		return nil
	}
	if len(req.Operations) > s.maxTxnOps {
		return fmt.Errorf("transaction of %d operations: more than maxTxnOps (%d), etcd's limit", len(req.Operations), s.maxTxnOps)
	}
	var ops []clientv3.Op
	var cmps []clientv3.Cmp
	for _, op := range req.Operations {
		if op.Upsert != nil {
			o, c, err := s.put(ctx, op.Upsert)
			if err != nil {
				return fmt.Errorf("transaction: %w", err)
			}
			ops, cmps = append(ops, o...), append(cmps, c...)
			continue
		}
		c, err := s.etagCmp(op.Delete.Key, op.Delete.ETag)
		if err != nil {
			return fmt.Errorf("transaction: %w", err)
		}
		ops, cmps = append(ops, clientv3.OpDelete(s.key(op.Delete.Key))), append(cmps, c...)
	}
	ok, err := s.commit(ctx, cmps, ops)
	if err != nil {
		return fmt.Errorf("transaction: %w", err)
	}
	if !ok {
		return fmt.Errorf("transaction: an etag or first-write condition failed, nothing was written: %w", state.ErrETagMismatch)
	}
	return nil
}

// put is the write of req and its conditions; a TTL gets a lease.
func (s *Store) put(ctx context.Context, req *state.SetRequest) ([]clientv3.Op, []clientv3.Cmp, error) {
	if req.Key == "" {
		return nil, nil, errors.New("set: missing key")
	}
	if err := req.Options.Validate(); err != nil {
		return nil, nil, fmt.Errorf("set %q: %w", req.Key, err)
	}
	ttl, _, err := state.TTLSeconds(req.Metadata)
	if err != nil {
		return nil, nil, fmt.Errorf("set %q: %w", req.Key, err)
	}
	cmps, err := s.etagCmp(req.Key, req.ETag)
	if err != nil {
		return nil, nil, err
	}
	if !state.HasETag(req.ETag) && req.Options.Concurrency == state.FirstWrite {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.key(req.Key)), "=", 0))
	}
	val := s.layout.encode(req.Value, ttl, time.Now())
	var opts []clientv3.OpOption
	if ttl > 0 {
		lctx, cancel := context.WithTimeout(ctx, opTimeout)
		lease, err := s.client.Grant(lctx, int64(ttl))
		cancel()
		if err != nil {
			return nil, nil, fmt.Errorf("set %q: lease for ttlInSeconds: %w", req.Key, err)
		}
		opts = append(opts, clientv3.WithLease(lease.ID))
	}
	return []clientv3.Op{clientv3.OpPut(s.key(req.Key), string(val), opts...)}, cmps, nil
}

// etagCmp is the condition of an ETag: the key's modification revision.
func (s *Store) etagCmp(key string, etag *string) ([]clientv3.Cmp, error) {
	if !state.HasETag(etag) {
		return nil, nil
	}
	rev, err := strconv.ParseInt(*etag, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%q: etag %q: %w", key, *etag, state.ErrETagInvalid)
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.key(key)), "=", rev)}, nil
}

// commit runs ops if every cmp holds; false when one did not.
func (s *Store) commit(ctx context.Context, cmps []clientv3.Cmp, ops []clientv3.Op) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	resp, err := s.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}
