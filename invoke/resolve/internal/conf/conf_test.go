package conf

import (
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		name    string
		m       Map
		want    time.Duration
		wantErr bool
	}{
		{"absent", Map{}, 7 * time.Second, false},
		{"go duration", Map{"timeout": "1500ms"}, 1500 * time.Millisecond, false},
		{"int seconds", Map{"timeout": 3}, 3 * time.Second, false},
		{"string seconds", Map{"timeout": "4"}, 4 * time.Second, false},
		{"float seconds", Map{"timeout": 0.5}, 500 * time.Millisecond, false},
		{"case-insensitive key", Map{"TimeOut": "2s"}, 2 * time.Second, false},
		{"alias", Map{"timeoutInSeconds": 9}, 9 * time.Second, false},
		{"empty string", Map{"timeout": ""}, 7 * time.Second, false},
		{"garbage", Map{"timeout": "soon"}, 0, true},
		{"wrong type", Map{"timeout": []any{1}}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.Duration(7*time.Second, "timeout", "timeoutInSeconds")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBoolAndString(t *testing.T) {
	m := Map{"a": "true", "b": false, "c": "nope", "s": 12, "u": "x"}
	if v, err := m.Bool(false, "a"); err != nil || !v {
		t.Fatalf("a = %v, %v", v, err)
	}
	if v, err := m.Bool(true, "b"); err != nil || v {
		t.Fatalf("b = %v, %v", v, err)
	}
	if _, err := m.Bool(false, "c"); err == nil {
		t.Fatal("c: want error")
	}
	if v, err := m.String("", "s"); err != nil || v != "12" {
		t.Fatalf("s = %q, %v", v, err)
	}
	if v, _ := m.String("def", "missing", "u"); v != "x" {
		t.Fatalf("alias lookup = %q", v)
	}
	if v, _ := m.String("def", "missing"); v != "def" {
		t.Fatalf("default = %q", v)
	}
}
