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

func TestConnectRefused(t *testing.T) {
	c, err := Parse("r", props{"redisHost": "127.0.0.1:1", "dialTimeout": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Connect(context.Background(), "r"); err == nil || !strings.Contains(err.Error(), "is the server up") {
		t.Fatalf("Connect to a closed port: %v; want an error saying what to check", err)
	}
}
