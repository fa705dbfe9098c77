package postgresql

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/tandemrun/tandem/components/state"
)

// Query runs Dapr's state query as SQL over the jsonb values, the way Dapr's
// component does: a key path "a.b" is value->'a'->>'b', compared as text
// with the filter's value; sorting is on that text; the page token is an
// offset. Unlike Dapr, expired rows are excluded and key breaks ties so pages
// are stable.
func (s *Store) Query(ctx context.Context, req *state.QueryRequest) (*state.QueryResponse, error) {
	b := &sqlBuilder{}
	where := notExpired
	if req.Query.Filter != nil {
		f, err := b.filter(req.Query.Filter)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		where += " AND " + f
	}
	sql := `SELECT key, value, isbinary, xmin::text FROM ` + s.cfg.tableName + ` WHERE ` + where + ` ORDER BY `
	for _, o := range req.Query.Sort {
		dir := "ASC"
		if o.Order == "DESC" {
			dir = "DESC"
		}
		sql += fieldText(o.Key) + " " + dir + ", "
	}
	sql += "key ASC"
	page := req.Query.Page
	if page.Limit > 0 {
		sql += " LIMIT " + strconv.Itoa(page.Limit)
	}
	offset := 0
	if page.Token != "" {
		n, err := strconv.Atoi(page.Token)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("query: page token %q is not one this store returned", page.Token)
		}
		offset = n
		sql += " OFFSET " + strconv.Itoa(offset)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.timeout)
	defer cancel()
	rows, err := s.db.Query(ctx, sql, b.params...)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	resp := &state.QueryResponse{Results: []state.QueryItem{}}
	for rows.Next() {
		var (
			it       state.QueryItem
			value    []byte
			isBinary bool
			etag     string
		)
		if err := rows.Scan(&it.Key, &value, &isBinary, &etag); err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		it.ETag = &etag
		if it.Data, err = state.FromJSONColumn(value, isBinary); err != nil {
			it.Error = err.Error()
		}
		resp.Results = append(resp.Results, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	if page.Limit > 0 {
		resp.Token = strconv.Itoa(offset + len(resp.Results))
	}
	return resp, nil
}

type sqlBuilder struct{ params []any }

func (b *sqlBuilder) param(v any) string {
	if v == nil {
		v = ""
	}
	b.params = append(b.params, fmt.Sprint(v))
	return "$" + strconv.Itoa(len(b.params))
}

var compareOps = map[state.FilterOp]string{
	state.OpEQ: "=", state.OpNEQ: "!=", state.OpGT: ">", state.OpGTE: ">=", state.OpLT: "<", state.OpLTE: "<=",
}

func (b *sqlBuilder) filter(f *state.Filter) (string, error) {
	switch f.Op {
	case state.OpAND, state.OpOR:
		parts := make([]string, 0, len(f.Filters))
		for i := range f.Filters {
			p, err := b.filter(&f.Filters[i])
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return "(" + strings.Join(parts, " "+string(f.Op)+" ") + ")", nil
	case state.OpIN:
		parts := make([]string, 0, len(f.Values))
		for _, v := range f.Values {
			parts = append(parts, fieldText(f.Key)+" = "+b.param(v))
		}
		return "(" + strings.Join(parts, " OR ") + ")", nil
	}
	op, ok := compareOps[f.Op]
	if !ok {
		return "", fmt.Errorf("unsupported filter %q", f.Op)
	}
	if _, isString := f.Value.(string); isString && op != "=" && op != "!=" {
		return "", fmt.Errorf("%s %q: string values are not permitted, use a number", f.Op, f.Key)
	}
	return fieldText(f.Key) + " " + op + " " + b.param(f.Value), nil
}

// fieldText turns "a.b" into value->'a'->>'b'. Path parts are quoted as SQL
// literals (quotes doubled), so a key cannot inject SQL.
func fieldText(key string) string {
	parts := strings.Split(key, ".")
	out := "value"
	for i, p := range parts {
		arrow := "->"
		if i == len(parts)-1 {
			arrow = "->>"
		}
		out += arrow + "'" + strings.ReplaceAll(p, "'", "''") + "'"
	}
	return out
}
