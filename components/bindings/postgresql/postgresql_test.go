package postgresql

import (
	"context"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/bindingstest"
)

const connString = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"

func meta() components.Metadata {
	return components.Metadata{Name: "pg", Type: Type, Properties: map[string]string{"connectionString": connString}}
}

func TestContract(t *testing.T) {
	bindingstest.RequireServer(t, "127.0.0.1:5432", "PostgreSQL")
	bindingstest.Run(t, bindingstest.Config{New: func() bindings.Binding { return New() }, Metadata: func(*testing.T) components.Metadata { return meta() }})
}

func TestOperations(t *testing.T) {
	bindingstest.RequireServer(t, "127.0.0.1:5432", "PostgreSQL")
	ctx := context.Background()
	b := New()
	if err := b.Init(ctx, meta()); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	table := "tandemtest_" + bindingstest.RandomSuffix()
	do := func(op, sql, params string) *bindings.InvokeResponse {
		t.Helper()
		md := map[string]string{"sql": sql}
		if params != "" {
			md["params"] = params
		}
		resp, err := b.Invoke(ctx, &bindings.InvokeRequest{Operation: op, Metadata: md})
		if err != nil {
			t.Fatalf("%s %s: %v", op, sql, err)
		}
		return resp
	}
	do("exec", "CREATE TABLE "+table+" (id int primary key, name text)", "")
	defer do("exec", "DROP TABLE "+table, "")
	resp := do("exec", "INSERT INTO "+table+" VALUES ($1, $2), ($3, $4)", `[1, "one", 2, "two"]`)
	if resp.Metadata["rows-affected"] != "2" || resp.Metadata["operation"] != "exec" || resp.Metadata["duration"] == "" {
		t.Errorf("exec metadata %v", resp.Metadata)
	}
	resp = do("query", "SELECT id, name FROM "+table+" ORDER BY id", "")
	if string(resp.Data) != `[[1,"one"],[2,"two"]]` {
		t.Errorf("query = %s", resp.Data)
	}
	if _, err := b.Invoke(ctx, &bindings.InvokeRequest{Operation: "exec", Metadata: map[string]string{}}); err == nil {
		t.Error("exec without sql succeeded")
	}
	if _, err := b.Invoke(ctx, &bindings.InvokeRequest{Operation: "exec", Metadata: map[string]string{"sql": "SELECT 1", "params": "{"}}); err == nil {
		t.Error("bad params succeeded")
	}
}

func TestCloseOperation(t *testing.T) {
	bindingstest.RequireServer(t, "127.0.0.1:5432", "PostgreSQL")
	ctx := context.Background()
	b := New()
	if err := b.Init(ctx, meta()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Invoke(ctx, &bindings.InvokeRequest{Operation: "close"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Invoke(ctx, &bindings.InvokeRequest{Operation: "query", Metadata: map[string]string{"sql": "SELECT 1"}}); err == nil {
		t.Error("query after close succeeded")
	}
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"minimal", map[string]string{"connectionString": connString}, false},
	{"url alias", map[string]string{"url": "postgres://u@localhost/db", "timeoutInSeconds": "30", "maxConns": "4", "queryExecMode": "exec"}, false},
	{"none", map[string]string{}, true},
	{"bad mode", map[string]string{"connectionString": connString, "queryExecMode": "fast"}, true},
	{"bad string", map[string]string{"connectionString": "postgres://%%%"}, true},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		cfg, err := parseConfig(components.Metadata{Name: "pg", Properties: c.props})
		if (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.wantErr)
		}
		if c.name == "url alias" && (cfg.Timeout.Seconds() != 30 || cfg.MaxConns != 4) {
			t.Errorf("config %+v", cfg)
		}
	}
}
