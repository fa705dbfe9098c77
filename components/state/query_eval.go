package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// EvalQuery runs a query over items in memory, for stores without a native
// query engine. Items whose data is not a JSON object are skipped. The page
// token is the offset of the next result, as in Dapr's SQL stores.
func EvalQuery(q *Query, items []QueryItem) (*QueryResponse, error) {
	type doc struct {
		item QueryItem
		v    any
	}
	var docs []doc
	for _, it := range items {
		dec := json.NewDecoder(bytes.NewReader(it.Data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			continue
		}
		if q.Filter == nil || q.Filter.Match(v) {
			docs = append(docs, doc{it, v})
		}
	}
	// Stable order first (by key) so pages are deterministic.
	sort.SliceStable(docs, func(i, j int) bool { return docs[i].item.Key < docs[j].item.Key })
	if len(q.Sort) > 0 {
		sort.SliceStable(docs, func(i, j int) bool {
			for _, s := range q.Sort {
				a, aok := Lookup(docs[i].v, s.Key)
				b, bok := Lookup(docs[j].v, s.Key)
				if !aok || !bok {
					if aok != bok {
						return aok // present values first
					}
					continue
				}
				c := compare(a, b)
				if c == 0 {
					continue
				}
				if s.Order == "DESC" {
					return c > 0
				}
				return c < 0
			}
			return false
		})
	}
	offset := 0
	if q.Page.Token != "" {
		n, err := strconv.Atoi(q.Page.Token)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("query: page token %q is not one this store returned", q.Page.Token)
		}
		offset = n
	}
	if offset > len(docs) {
		offset = len(docs)
	}
	docs = docs[offset:]
	resp := &QueryResponse{Results: []QueryItem{}}
	if q.Page.Limit > 0 && len(docs) > q.Page.Limit {
		docs = docs[:q.Page.Limit]
	}
	for _, d := range docs {
		resp.Results = append(resp.Results, d.item)
	}
	if q.Page.Limit > 0 {
		resp.Token = strconv.Itoa(offset + len(resp.Results))
	}
	return resp, nil
}

// Match reports whether a decoded JSON value satisfies the filter.
func (f *Filter) Match(v any) bool {
	switch f.Op {
	case OpAND:
		for i := range f.Filters {
			if !f.Filters[i].Match(v) {
				return false
			}
		}
		return true
	case OpOR:
		for i := range f.Filters {
			if f.Filters[i].Match(v) {
				return true
			}
		}
		return false
	}
	got, ok := Lookup(v, f.Key)
	if !ok {
		return f.Op == OpNEQ
	}
	switch f.Op {
	case OpEQ:
		return compare(got, f.Value) == 0
	case OpNEQ:
		return compare(got, f.Value) != 0
	case OpGT:
		return compare(got, f.Value) > 0
	case OpGTE:
		return compare(got, f.Value) >= 0
	case OpLT:
		return compare(got, f.Value) < 0
	case OpLTE:
		return compare(got, f.Value) <= 0
	case OpIN:
		for _, want := range f.Values {
			if compare(got, want) == 0 {
				return true
			}
		}
	}
	return false
}

// Lookup follows a dotted path ("person.org") into a decoded JSON value.
func Lookup(v any, path string) (any, bool) {
	for _, part := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[part]; !ok {
			return nil, false
		}
	}
	return v, true
}

// compare orders numbers numerically and everything else by its text, which
// is how Dapr's PostgreSQL query compares (value->>'key' against text).
func compare(a, b any) int {
	fa, aok := number(a)
	fb, bok := number(b)
	if aok && bok {
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	}
	return strings.Compare(text(a), text(b))
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case float64:
		return n, true
	case int:
		return float64(n), true
	}
	return 0, false
}

func text(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case nil:
		return ""
	case map[string]any, []any:
		b, _ := json.Marshal(t)
		return string(b)
	}
	return fmt.Sprint(v)
}
