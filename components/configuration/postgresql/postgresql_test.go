package postgresql

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/configuration"
	"github.com/tandemrun/tandem/components/configuration/configurationtest"
)

const connString = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"

// setup creates a table and the notify trigger Dapr's documentation
// gives, and returns the table and channel names.
func setup(t *testing.T) (string, string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	suffix := configurationtest.RandomSuffix()
	table, channel := "cfgtest_"+suffix, "cfgch_"+suffix
	for _, q := range []string{
		"CREATE TABLE " + table + " (key text NOT NULL, value text, version text, metadata json)",
		`CREATE OR REPLACE FUNCTION ` + table + `_notify() RETURNS TRIGGER AS $$
DECLARE data json; notification json;
BEGIN
  IF (TG_OP = 'DELETE') THEN data = row_to_json(OLD); ELSE data = row_to_json(NEW); END IF;
  notification = json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', data);
  PERFORM pg_notify('` + channel + `', notification::text);
  RETURN NULL;
END; $$ LANGUAGE plpgsql`,
		"CREATE TRIGGER " + table + "_trg AFTER INSERT OR UPDATE OR DELETE ON " + table + " FOR EACH ROW EXECUTE PROCEDURE " + table + "_notify()",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_, _ = conn.Exec(ctx, "DROP TABLE "+table)
		_, _ = conn.Exec(ctx, "DROP FUNCTION "+table+"_notify()")
	})
	return table, channel, conn
}

func TestContract(t *testing.T) {
	configurationtest.RequireServer(t, "127.0.0.1:5432", "PostgreSQL")
	table, channel, conn := setup(t)
	configurationtest.Run(t, func(t *testing.T) configuration.Store {
		s := New(nil)
		err := s.Init(context.Background(), components.Metadata{Name: "cfg", Properties: map[string]string{
			"connectionString": connString, "table": table, "notifyChannel": channel,
		}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(t *testing.T, key, value, version string) {
		ctx := context.Background()
		if _, err := conn.Exec(ctx, "DELETE FROM "+table+" WHERE key = $1", key); err != nil {
			t.Fatal(err)
		}
		if value == "" {
			return
		}
		if _, err := conn.Exec(ctx, "INSERT INTO "+table+" (key, value, version, metadata) VALUES ($1, $2, $3, '{\"a\":\"b\"}')", key, value, version); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHighestVersionWins(t *testing.T) {
	configurationtest.RequireServer(t, "127.0.0.1:5432", "PostgreSQL")
	table, _, conn := setup(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "INSERT INTO "+table+" (key, value, version) VALUES ('k', 'old', '1'), ('k', 'new', '10'), ('k', 'mid', '2')"); err != nil {
		t.Fatal(err)
	}
	s := New(nil)
	if err := s.Init(ctx, components.Metadata{Name: "cfg", Properties: map[string]string{"connectionString": connString, "table": table}}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	items, err := s.Get(ctx, []string{"k"}, nil)
	if err != nil || items["k"] == nil || items["k"].Value != "new" {
		t.Fatalf("Get = %v, %v", items, err)
	}
	if _, err := s.Get(ctx, []string{"bad key;"}, nil); err == nil {
		t.Error("a key with forbidden characters was accepted")
	}
	if err := s.Subscribe(ctx, nil, nil, nil); err == nil {
		t.Error("Subscribe without a notify channel succeeded")
	}
}

var parseConfigCases = []struct {
	name    string
	props   map[string]string
	wantErr bool
}{
	{"minimal", map[string]string{"connectionString": connString, "table": "cfg"}, false},
	{"alias", map[string]string{"connectionString": connString, "table": "cfg", "pgNotifyChannel": "ch", "timeoutInSeconds": "5"}, false},
	{"no table", map[string]string{"connectionString": connString}, true},
	{"upper table", map[string]string{"connectionString": connString, "table": "Cfg"}, true},
	{"bad channel", map[string]string{"connectionString": connString, "table": "cfg", "notifyChannel": "a;b"}, true},
	{"no connection", map[string]string{"table": "cfg"}, true},
}

func TestParseConfig(t *testing.T) {
	for _, c := range parseConfigCases {
		if _, err := parseConfig(components.Metadata{Name: "cfg", Properties: c.props}); (err != nil) != c.wantErr {
			t.Errorf("%s: err = %v, want error %v", c.name, err, c.wantErr)
		}
	}
}
