package state

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var queryCases = []struct {
	name    string
	in      string
	wantErr string
}{
	{"empty", `{}`, ""},
	{"eq", `{"filter":{"EQ":{"state":"CA"}}}`, ""},
	{"nested", `{"filter":{"OR":[{"EQ":{"person.org":"Dev Ops"}},{"AND":[{"EQ":{"person.org":"Finance"}},{"IN":{"state":["CA","WA"]}}]}]},"sort":[{"key":"state","order":"DESC"},{"key":"person.id"}],"page":{"limit":3,"token":"2"}}`, ""},
	{"comparisons", `{"filter":{"AND":[{"GT":{"n":1}},{"GTE":{"n":1}},{"LT":{"n":9}},{"LTE":{"n":9}},{"NEQ":{"n":5}}]}}`, ""},
	{"unknown op", `{"filter":{"LIKE":{"a":"b"}}}`, "unknown filter operator"},
	{"two ops", `{"filter":{"EQ":{"a":1},"NEQ":{"a":2}}}`, "exactly one operator"},
	{"two keys", `{"filter":{"EQ":{"a":1,"b":2}}}`, "one key"},
	{"empty IN", `{"filter":{"IN":{"a":[]}}}`, "non-empty list"},
	{"IN not list", `{"filter":{"IN":{"a":1}}}`, "non-empty list"},
	{"empty AND", `{"filter":{"AND":[]}}`, "empty list"},
	{"bad order", `{"sort":[{"key":"a","order":"UP"}]}`, "ASC or DESC"},
	{"sort without key", `{"sort":[{"order":"ASC"}]}`, "missing key"},
	{"negative limit", `{"page":{"limit":-1}}`, "negative"},
	{"not JSON", `{"filter":`, "malformed"},
	{"trailing", `{} {}`, "unexpected data"},
	{"too deep", strings.Repeat(`{"AND":[`, 40) + `{"EQ":{"a":1}}` + strings.Repeat(`]}`, 40), "deeper"},
}

func TestParseQuery(t *testing.T) {
	for _, tc := range queryCases {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if tc.name == "too deep" {
				in = `{"filter":` + tc.in + `}`
			}
			q, err := ParseQuery([]byte(in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || q == nil {
				t.Fatalf("ParseQuery: %v", err)
			}
		})
	}
	q, err := ParseQuery([]byte(queryCases[2].in))
	if err != nil {
		t.Fatal(err)
	}
	if q.Filter.Op != OpOR || len(q.Filter.Filters) != 2 || q.Filter.Filters[1].Filters[1].Op != OpIN ||
		len(q.Filter.Filters[1].Filters[1].Values) != 2 || q.Page != (Page{Limit: 3, Token: "2"}) ||
		!reflect.DeepEqual(q.Sort, []Sort{{"state", "DESC"}, {"person.id", ""}}) {
		t.Fatalf("parsed query = %+v", q)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, tc := range queryCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		q, err := ParseQuery([]byte(in))
		if err != nil {
			return
		}
		// A parsed query evaluates without panicking.
		items := []QueryItem{{Key: "a", Data: []byte(`{"n":1,"s":"x","o":{"p":[1]}}`)}, {Key: "b", Data: []byte(`7`)}}
		if q.Page.Token != "" {
			q.Page.Token = "0"
		}
		if _, err := EvalQuery(q, items); err != nil {
			t.Fatalf("EvalQuery of a parsed query: %v", err)
		}
	})
}

func TestEvalQuery(t *testing.T) {
	docs := map[string]string{
		"k1": `{"n":1,"city":"Oslo","person":{"org":"dev"}}`,
		"k2": `{"n":10,"city":"Lima","person":{"org":"ops"}}`,
		"k3": `{"n":3,"city":"Oslo","person":{"org":"ops"}}`,
		"k4": `{"n":2}`,
		"k5": `not json`,
	}
	var items []QueryItem
	for k, v := range docs {
		items = append(items, QueryItem{Key: k, Data: []byte(v)})
	}
	tests := []struct {
		name  string
		query string
		want  []string
		token string
	}{
		{"all, by key", `{}`, []string{"k1", "k2", "k3", "k4"}, ""},
		{"eq", `{"filter":{"EQ":{"city":"Oslo"}}}`, []string{"k1", "k3"}, ""},
		{"eq number", `{"filter":{"EQ":{"n":10}}}`, []string{"k2"}, ""},
		{"neq includes missing", `{"filter":{"NEQ":{"city":"Oslo"}}}`, []string{"k2", "k4"}, ""},
		{"gt numeric", `{"filter":{"GT":{"n":2}}}`, []string{"k2", "k3"}, ""},
		{"in nested", `{"filter":{"IN":{"person.org":["ops"]}}}`, []string{"k2", "k3"}, ""},
		{"or/and", `{"filter":{"OR":[{"EQ":{"person.org":"dev"}},{"AND":[{"EQ":{"city":"Oslo"}},{"LTE":{"n":3}}]}]}}`, []string{"k1", "k3"}, ""},
		{"sort desc numeric", `{"sort":[{"key":"n","order":"DESC"}]}`, []string{"k2", "k3", "k4", "k1"}, ""},
		{"sort missing last", `{"sort":[{"key":"city"}]}`, []string{"k2", "k1", "k3", "k4"}, ""},
		{"page 1", `{"sort":[{"key":"n"}],"page":{"limit":3}}`, []string{"k1", "k4", "k3"}, "3"},
		{"page 2", `{"sort":[{"key":"n"}],"page":{"limit":3,"token":"3"}}`, []string{"k2"}, "4"},
		{"past the end", `{"page":{"limit":3,"token":"9"}}`, nil, "4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := ParseQuery([]byte(tc.query))
			if err != nil {
				t.Fatal(err)
			}
			r, err := EvalQuery(q, items)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range r.Results {
				got = append(got, it.Key)
			}
			if !reflect.DeepEqual(got, tc.want) || r.Token != tc.token {
				t.Fatalf("keys %v token %q, want %v token %q", got, r.Token, tc.want, tc.token)
			}
		})
	}
	if _, err := EvalQuery(&Query{Page: Page{Token: "x"}}, items); err == nil {
		t.Fatal("bad token accepted")
	}
	var v any
	_ = json.Unmarshal([]byte(`{"a":{"b":1}}`), &v)
	if _, ok := Lookup(v, "a.c"); ok {
		t.Fatal("Lookup found a missing path")
	}
}
