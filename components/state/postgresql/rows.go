package postgresql

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/tandemrun/tandem/components/state"
)

// The reads and writes both layouts share, on the SQL of c.l.

// Get returns a live value or nil.
func (c *conn) Get(ctx context.Context, req *state.GetRequest) (*state.GetResponse, error) {
	if req.Key == "" {
		return nil, errors.New("get: missing key")
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	st, err := c.l.read(c.db.QueryRow(ctx, `SELECT `+c.l.columns+` FROM `+c.l.table+` WHERE key = $1 AND `+c.l.live, req.Key))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err == nil {
		err = st.decodeErr
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", req.Key, err)
	}
	resp := &state.GetResponse{Data: st.data, ETag: &st.etag}
	if st.expires != nil {
		resp.Metadata = state.ExpireTimeMetadata(*st.expires)
	}
	return resp, nil
}

// BulkGet reads all keys in one query.
func (c *conn) BulkGet(ctx context.Context, reqs []state.GetRequest) ([]state.BulkGetResponse, error) {
	keys := make([]string, len(reqs))
	for i, r := range reqs {
		keys[i] = r.Key
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	rows, err := c.db.Query(ctx, `SELECT key, `+c.l.columns+` FROM `+c.l.table+` WHERE key = ANY($1) AND `+c.l.live, keys)
	if err != nil {
		return nil, fmt.Errorf("bulk get: %w", err)
	}
	defer rows.Close()
	found := map[string]state.BulkGetResponse{}
	for rows.Next() {
		var key string
		st, err := c.l.read(rows, &key)
		if err != nil {
			return nil, fmt.Errorf("bulk get: %w", err)
		}
		r := state.BulkGetResponse{Key: key, Data: st.data, ETag: &st.etag}
		if st.decodeErr != nil {
			r.Data, r.Error = nil, st.decodeErr.Error()
		}
		if st.expires != nil {
			r.Metadata = state.ExpireTimeMetadata(*st.expires)
		}
		found[key] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("bulk get: %w", err)
	}
	out := make([]state.BulkGetResponse, len(reqs))
	for i, k := range keys {
		if r, ok := found[k]; ok {
			out[i] = r
		} else {
			out[i] = state.BulkGetResponse{Key: k}
		}
	}
	return out, nil
}

// Set writes one key.
func (c *conn) Set(ctx context.Context, req *state.SetRequest) error {
	return c.set(ctx, c.db, req)
}

func (c *conn) set(ctx context.Context, db dbtx, req *state.SetRequest) error {
	if req.Key == "" {
		return errors.New("set: missing key")
	}
	if err := req.Options.Validate(); err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	ttl, _, err := state.TTLSeconds(req.Metadata)
	if err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	values, err := c.l.values(req)
	if err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	args := append([]any{req.Key}, values...)
	expire := expireSQL(ttl)
	var sql string
	if state.HasETag(req.ETag) {
		etag, err := c.l.etag(*req.ETag)
		if err != nil {
			return fmt.Errorf("set %q: etag %q: %w", req.Key, *req.ETag, err)
		}
		args = append(args, etag)
		sql = c.l.update(expire) + ` AND ` + c.l.etagIs("$"+strconv.Itoa(len(args))) + ` AND ` + c.l.live
	} else {
		// An upsert in both modes because the row may exist but be expired
		// and not yet collected; first-write only replaces an expired row.
		sql = c.l.upsert(expire)
		if req.Options.Concurrency == state.FirstWrite {
			sql += ` WHERE ` + c.l.expired
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	tag, err := db.Exec(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("set %q: %w", req.Key, err)
	}
	if tag.RowsAffected() != 1 {
		return state.SetConflict(req.Key, req.ETag)
	}
	return nil
}

// Delete removes one key.
func (c *conn) Delete(ctx context.Context, req *state.DeleteRequest) error {
	return c.delete(ctx, c.db, req)
}

func (c *conn) delete(ctx context.Context, db dbtx, req *state.DeleteRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout)
	defer cancel()
	if !state.HasETag(req.ETag) {
		if _, err := db.Exec(ctx, `DELETE FROM `+c.l.table+` WHERE key = $1`, req.Key); err != nil {
			return fmt.Errorf("delete %q: %w", req.Key, err)
		}
		return nil
	}
	etag, err := c.l.etag(*req.ETag)
	if err != nil {
		return fmt.Errorf("delete %q: etag %q: %w", req.Key, *req.ETag, err)
	}
	tag, err := db.Exec(ctx, `DELETE FROM `+c.l.table+` WHERE key = $1 AND `+c.l.etagIs("$2")+` AND `+c.l.live, req.Key, etag)
	if err != nil {
		return fmt.Errorf("delete %q: %w", req.Key, err)
	}
	if tag.RowsAffected() != 1 {
		return fmt.Errorf("delete %q: %w", req.Key, state.ErrETagMismatch)
	}
	return nil
}

// Multi applies a transaction atomically in one database transaction (none
// for a single operation).
func (c *conn) Multi(ctx context.Context, req *state.TransactionRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	switch len(req.Operations) {
	case 0:
		return nil
	case 1:
		return c.apply(ctx, c.db, req.Operations[0])
	}
	return pgx.BeginFunc(ctx, c.db, func(tx pgx.Tx) error {
		for _, op := range req.Operations {
			if err := c.apply(ctx, tx, op); err != nil {
				return err
			}
		}
		return nil
	})
}

func (c *conn) apply(ctx context.Context, db dbtx, op state.Operation) error {
	if op.Upsert != nil {
		return c.set(ctx, db, op.Upsert)
	}
	return c.delete(ctx, db, op.Delete)
}

// BulkSet writes each key in one transaction; unlike Dapr's loop of Sets it
// is all or nothing.
func (c *conn) BulkSet(ctx context.Context, reqs []state.SetRequest) error {
	return c.Multi(ctx, &state.TransactionRequest{Operations: state.UpsertOps(reqs)})
}

// BulkDelete deletes each key in one transaction.
func (c *conn) BulkDelete(ctx context.Context, reqs []state.DeleteRequest) error {
	return c.Multi(ctx, &state.TransactionRequest{Operations: state.DeleteOps(reqs)})
}

// expireSQL is the SQL expiry time of a write: ttl seconds from now, or
// NULL for none. ttl is an integer the caller parsed, never user text.
func expireSQL(ttl int) string {
	if ttl <= 0 {
		return "NULL"
	}
	return "CURRENT_TIMESTAMP + interval '" + strconv.Itoa(ttl) + " seconds'"
}
