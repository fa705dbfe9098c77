package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// QueryRequest is a state query with its request metadata.
type QueryRequest struct {
	Query    Query
	Metadata map[string]string
}

// QueryResponse is a page of results and the token of the next page ("" at
// the end, or when no limit was set).
type QueryResponse struct {
	Results  []QueryItem
	Token    string
	Metadata map[string]string
}

// QueryItem is one result. Keys are as stored (with their prefix).
type QueryItem struct {
	Key   string
	Data  []byte
	ETag  *string
	Error string
}

// Query is Dapr's state query: {"filter":…, "sort":[…], "page":{…}}.
type Query struct {
	// Filter is nil when the query has none (match everything).
	Filter *Filter
	Sort   []Sort
	Page   Page
}

// FilterOp is a filter operator, spelled as in Dapr's query JSON.
type FilterOp string

// Dapr's filter operators.
const (
	OpEQ  FilterOp = "EQ"
	OpNEQ FilterOp = "NEQ"
	OpGT  FilterOp = "GT"
	OpGTE FilterOp = "GTE"
	OpLT  FilterOp = "LT"
	OpLTE FilterOp = "LTE"
	OpIN  FilterOp = "IN"
	OpAND FilterOp = "AND"
	OpOR  FilterOp = "OR"
)

// Filter is one node of a query's filter tree. Comparison operators use Key
// (a dotted path into the JSON value, e.g. "person.org") and Value; IN uses
// Values; AND and OR use Filters.
type Filter struct {
	Op      FilterOp
	Key     string
	Value   any
	Values  []any
	Filters []Filter
}

// Sort orders results by a dotted key, Order "ASC" (default) or "DESC".
type Sort struct {
	Key   string
	Order string
}

// Page limits the results; Token is the opaque token of a previous response.
type Page struct {
	Limit int
	Token string
}

// ParseQuery decodes Dapr's query JSON, rejecting unknown operators, filters
// with more than one operator, empty IN and AND/OR lists, and bad sort
// orders.
func ParseQuery(b []byte) (*Query, error) {
	var raw struct {
		Filter map[string]json.RawMessage `json:"filter"`
		Sort   []struct {
			Key   string `json:"key"`
			Order string `json:"order"`
		} `json:"sort"`
		Page struct {
			Limit int    `json:"limit"`
			Token string `json:"token"`
		} `json:"page"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("query: malformed JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("query: unexpected data after the JSON object")
	}
	q := &Query{Page: Page{Limit: raw.Page.Limit, Token: raw.Page.Token}}
	if q.Page.Limit < 0 {
		return nil, fmt.Errorf("query: page limit %d must not be negative", q.Page.Limit)
	}
	for i, s := range raw.Sort {
		if s.Key == "" {
			return nil, fmt.Errorf("query: sort %d: missing key", i)
		}
		o := strings.ToUpper(s.Order)
		if o != "" && o != "ASC" && o != "DESC" {
			return nil, fmt.Errorf("query: sort %d: order %q must be ASC or DESC", i, s.Order)
		}
		q.Sort = append(q.Sort, Sort{Key: s.Key, Order: o})
	}
	if len(raw.Filter) > 0 {
		f, err := parseFilter(raw.Filter, 0)
		if err != nil {
			return nil, fmt.Errorf("query: %w", err)
		}
		q.Filter = &f
	}
	return q, nil
}

// maxFilterDepth bounds recursion on hostile input.
const maxFilterDepth = 32

func parseFilter(m map[string]json.RawMessage, depth int) (Filter, error) {
	if depth > maxFilterDepth {
		return Filter{}, fmt.Errorf("filter nested deeper than %d levels", maxFilterDepth)
	}
	if len(m) != 1 {
		return Filter{}, fmt.Errorf("a filter must have exactly one operator, found %d", len(m))
	}
	for name, body := range m {
		op := FilterOp(name)
		switch op {
		case OpAND, OpOR:
			var subs []map[string]json.RawMessage
			if err := json.Unmarshal(body, &subs); err != nil {
				return Filter{}, fmt.Errorf("%s: expected a list of filters: %w", op, err)
			}
			if len(subs) == 0 {
				return Filter{}, fmt.Errorf("%s: empty list of filters", op)
			}
			f := Filter{Op: op}
			for _, s := range subs {
				sf, err := parseFilter(s, depth+1)
				if err != nil {
					return Filter{}, err
				}
				f.Filters = append(f.Filters, sf)
			}
			return f, nil
		case OpEQ, OpNEQ, OpGT, OpGTE, OpLT, OpLTE, OpIN:
			var kv map[string]any
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			if err := dec.Decode(&kv); err != nil || len(kv) != 1 {
				return Filter{}, fmt.Errorf("%s: expected an object with one key and its value", op)
			}
			for k, v := range kv {
				if k == "" {
					return Filter{}, fmt.Errorf("%s: empty key", op)
				}
				if op != OpIN {
					return Filter{Op: op, Key: k, Value: v}, nil
				}
				vals, ok := v.([]any)
				if !ok || len(vals) == 0 {
					return Filter{}, fmt.Errorf("IN %q: expected a non-empty list of values", k)
				}
				return Filter{Op: op, Key: k, Values: vals}, nil
			}
		default:
			return Filter{}, fmt.Errorf("unknown filter operator %q: use EQ, NEQ, GT, GTE, LT, LTE, IN, AND or OR", name)
		}
	}
	return Filter{}, errors.New("unreachable")
}
