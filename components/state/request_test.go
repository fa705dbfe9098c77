package state

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseTTL(t *testing.T) {
	tests := []struct {
		in      string // "-" = absent
		want    time.Duration
		ok      bool
		wantErr bool
	}{
		{"-", 0, false, false},
		{"", 0, false, false},
		{"10", 10 * time.Second, true, false},
		{"0", 0, true, false},
		{"-1", 0, true, false},
		{"-2", 0, false, true},
		{"1.5", 0, false, true},
		{"abc", 0, false, true},
		{"99999999999", 0, false, true},
	}
	for _, tc := range tests {
		md := map[string]string{}
		if tc.in != "-" {
			md[MetadataTTL] = tc.in
		}
		got, ok, err := ParseTTL(md)
		if (err != nil) != tc.wantErr || got != tc.want || ok != tc.ok {
			t.Errorf("ParseTTL(%q) = %v, %v, %v; want %v, %v, error %v", tc.in, got, ok, err, tc.want, tc.ok, tc.wantErr)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		o    Options
		okay bool
	}{
		{Options{}, true},
		{Options{FirstWrite, Strong}, true},
		{Options{LastWrite, Eventual}, true},
		{Options{Concurrency: "first"}, false},
		{Options{Consistency: "STRONG"}, false},
	}
	for _, tc := range tests {
		if err := tc.o.Validate(); (err == nil) != tc.okay {
			t.Errorf("%+v.Validate() = %v, want ok %v", tc.o, err, tc.okay)
		}
	}
}

func TestTransactionValidate(t *testing.T) {
	set := &SetRequest{Key: "k"}
	del := &DeleteRequest{Key: "k"}
	tests := []struct {
		name string
		ops  []Operation
		okay bool
	}{
		{"empty", nil, true},
		{"upsert and delete", []Operation{{Upsert: set}, {Delete: del}}, true},
		{"neither", []Operation{{}}, false},
		{"both", []Operation{{Upsert: set, Delete: del}}, false},
		{"no key", []Operation{{Upsert: &SetRequest{}}}, false},
		{"bad options", []Operation{{Delete: &DeleteRequest{Key: "k", Options: Options{Concurrency: "x"}}}}, false},
	}
	for _, tc := range tests {
		r := &TransactionRequest{Operations: tc.ops}
		if err := r.Validate(); (err == nil) != tc.okay {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.okay)
		}
	}
}

func TestHasFeature(t *testing.T) {
	f := []Feature{FeatureETag, FeatureTTL}
	if !HasFeature(f, FeatureTTL) || HasFeature(f, FeatureQueryAPI) {
		t.Fatal("HasFeature is wrong")
	}
}

func TestDeleteValidateAndSetConflict(t *testing.T) {
	if err := (&DeleteRequest{}).Validate(); err == nil || err.Error() != "delete: missing key" {
		t.Errorf("no key: %v", err)
	}
	if err := (&DeleteRequest{Key: "k", Options: Options{Concurrency: "sometimes"}}).Validate(); err == nil || !strings.Contains(err.Error(), `delete "k"`) {
		t.Errorf("bad options: %v", err)
	}
	if err := (&DeleteRequest{Key: "k"}).Validate(); err != nil {
		t.Errorf("valid request: %v", err)
	}
	etag := "3"
	for _, e := range []*string{&etag, nil} {
		err := SetConflict("k", e)
		if !errors.Is(err, ErrETagMismatch) {
			t.Errorf("etag %v: %v is not ErrETagMismatch", e, err)
		}
	}
	if err := SetConflict("k", nil); !strings.Contains(err.Error(), "first-write") {
		t.Errorf("no etag: %v", err)
	}
}
