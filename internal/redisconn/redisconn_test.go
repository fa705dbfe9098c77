package redisconn

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// props is a Metadata over a map, as components.Metadata reads it.
type props map[string]string

func (p props) String(n, def string) string {
	if v, ok := p[n]; ok {
		return v
	}
	return def
}
func (p props) Int(n string, def int) (int, error) {
	if v, ok := p[n]; ok {
		var i int
		_, err := fmt.Sscan(v, &i)
		return i, err
	}
	return def, nil
}
func (p props) Bool(n string, def bool) (bool, error) {
	if v, ok := p[n]; ok {
		return v == "true", nil
	}
	return def, nil
}
func (p props) Duration(n string, def time.Duration) (time.Duration, error) {
	if v, ok := p[n]; ok {
		return time.ParseDuration(v)
	}
	return def, nil
}

func TestParse(t *testing.T) {
	c, err := Parse("r", props{"redisHost": "localhost", "redisDB": "2", "enableTLS": "true"})
	if err != nil || c.Host != "localhost:6379" || c.DB != 2 || !c.EnableTLS || c.Timeout != 5*time.Second {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
	for _, bad := range []props{{}, {"redisHost": "h:1", "redisDB": "-1"}, {"redisHost": "h:1", "dialTimeout": "0s"}} {
		if _, err := Parse("r", bad); err == nil || !strings.Contains(err.Error(), `component "r"`) {
			t.Errorf("Parse(%v) error = %v; want one naming the component", bad, err)
		}
	}
}

func TestParseTopology(t *testing.T) {
	cases := []struct {
		name    string
		props   props
		check   func(Config) bool
		wantErr string
	}{
		{"node", props{"redisHost": "h"}, func(c Config) bool {
			return !c.Cluster() && !c.Failover && c.Host == "h:6379" && len(c.Addrs) == 1
		}, ""},
		{"cluster seeds", props{"redisHost": "a:7000, b ,[::1]", "redisType": "Cluster"}, func(c Config) bool {
			return c.Cluster() && c.Host == "a:7000,b:6379,[::1]:6379" && len(c.Addrs) == 3
		}, ""},
		{"sentinels", props{"redisHost": "s1:26379,s2:26379", "failover": "true", "sentinelMasterName": "m",
			"sentinelUsername": "su", "sentinelPassword": "sp", "redisDB": "2"}, func(c Config) bool {
			o := c.Options()
			return c.Failover && !c.Cluster() && o.MasterName == "m" && o.SentinelUsername == "su" &&
				o.SentinelPassword == "sp" && o.DB == 2 && len(o.Addrs) == 2
		}, ""},
		{"failover wins over cluster", props{"redisHost": "s", "failover": "true", "sentinelMasterName": "m", "redisType": "cluster"},
			func(c Config) bool { return c.Failover && !c.Cluster() }, ""},
		{"several hosts need a topology", props{"redisHost": "a,b"}, nil, `set redisType "cluster"`},
		{"unknown type", props{"redisHost": "a", "redisType": "ring"}, nil, `set "node" or "cluster"`},
		{"failover without master name", props{"redisHost": "a", "failover": "true"}, nil, "sentinelMasterName"},
		{"cluster has only db 0", props{"redisHost": "a", "redisType": "cluster", "redisDB": "1"}, nil, "only database 0"},
		{"empty address", props{"redisHost": "a,,b", "redisType": "cluster"}, nil, "empty address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("r", tc.props)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(c) {
				t.Fatalf("Parse = %+v, %v", c, err)
			}
		})
	}
}

// TestSlot checks the hash slot against values from the Redis Cluster
// specification and CLUSTER KEYSLOT (redistest checks more against a live
// cluster).
func TestSlot(t *testing.T) {
	for key, want := range map[string]int{
		"123456789":            0x31C3 % Slots, // CRC16/XMODEM check value
		"foo":                  12182,
		"{user1000}.following": Slot("user1000"),
		"foo{}{bar}":           Slot("foo{}{bar}"),
		"foo{{bar}}zap":        Slot("{bar"),
		"foo{bar}{zap}":        Slot("bar"),
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	if err := SameSlot([]string{"app||{o1}a", "app||{o1}b"}); err != nil {
		t.Errorf("same tag: %v", err)
	}
	if err := SameSlot([]string{"a", "b"}); err == nil || !strings.Contains(err.Error(), "hash tag") {
		t.Errorf("different slots: %v; want an error explaining hash tags", err)
	}
}

func FuzzSlot(f *testing.F) {
	for _, s := range []string{"", "foo", "{a}b", "{}", "x{y}z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		s := Slot(key)
		if s < 0 || s >= Slots {
			t.Fatalf("Slot(%q) = %d out of range", key, s)
		}
		// A non-empty tag without "}" in it decides the slot alone.
		if key != "" && !strings.Contains(key, "}") && Slot("{"+key+"}") != Slot("{"+key+"}tail") {
			t.Fatalf("hash tag ignored for %q", key)
		}
	})
}

func TestConnectRefused(t *testing.T) {
	c, err := Parse("r", props{"redisHost": "127.0.0.1:1", "dialTimeout": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(context.Background(), "r"); err == nil || !strings.Contains(err.Error(), "is the server up") {
		t.Fatalf("Connect to a closed port: %v; want an error saying what to check", err)
	}
}
