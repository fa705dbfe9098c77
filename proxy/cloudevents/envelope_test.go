package cloudevents

import (
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"testing"
	"time"
)

var (
	now    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
)

const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

func base(ct, data string) Request {
	return Request{Data: []byte(data), DataContentType: ct, Topic: "orders", PubsubName: "ps", Source: "app1", TraceParent: tp, TraceState: "k=v", Now: now}
}

func TestWrapContentTypes(t *testing.T) {
	tests := []struct {
		name     string
		ct, data string
		field    string
		want     any
		wantCT   string
	}{
		{"json object", "application/json", `{"a":1,"big":12345678901234567890}`, FieldData, map[string]any{"a": json.Number("1"), "big": json.Number("12345678901234567890")}, "application/json"},
		{"json params", "application/json; charset=utf-8", `[1,"x"]`, FieldData, []any{json.Number("1"), "x"}, "application/json; charset=utf-8"},
		{"json invalid keeps text", "application/json", `{nope`, FieldData, "{nope", "application/json"},
		{"json empty", "application/json", ``, FieldData, "", "application/json"},
		{"text", "text/plain", "hello", FieldData, "hello", "text/plain"},
		{"default text", "", "hello", FieldData, "hello", "text/plain"},
		{"xml", "application/xml", "<a/>", FieldData, "<a/>", "application/xml"},
		{"binary", "application/octet-stream", "\x00\x01\xff", FieldDataBase64, "AAH/", "application/octet-stream"},
		{"other type is text", "image/png", "png", FieldData, "png", "image/png"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Wrap(base(tt.ct, tt.data))
			if err != nil {
				t.Fatal(err)
			}
			if got := ev[tt.field]; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s = %#v, want %#v", tt.field, got, tt.want)
			}
			other := FieldDataBase64
			if tt.field == FieldDataBase64 {
				other = FieldData
			}
			if _, ok := ev[other]; ok {
				t.Errorf("%s must not be set", other)
			}
			want := map[string]any{
				FieldSpecVersion: "1.0", FieldType: DefaultType, FieldSource: "app1",
				FieldTopic: "orders", FieldPubsubName: "ps", FieldTraceID: tp, FieldTraceParent: tp,
				FieldTraceState: "k=v", FieldTime: "2026-03-01T12:00:00Z", FieldDataContentType: tt.wantCT,
			}
			for k, v := range want {
				if ev[k] != v {
					t.Errorf("%s = %v, want %v", k, ev[k], v)
				}
			}
			if !uuidRe.MatchString(String(ev, FieldID)) {
				t.Errorf("id %q is not a uuid v4", ev[FieldID])
			}
			if _, ok := ev[FieldExpiration]; ok {
				t.Error("no expiration without ttl")
			}
		})
	}
}

func TestWrapOverridesAndTTL(t *testing.T) {
	req := base("text/plain", "x")
	req.Metadata = map[string]string{
		"cloudevent.id": "my-id", "CloudEvent.Source": "src", "cloudevent.type": "my.type",
		"cloudevent.traceid": "tid", "cloudevent.tracestate": "a=b", "ttlInSeconds": "90",
		"cloudevent.topic": "ignored",
	}
	ev, err := Wrap(req)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{FieldID: "my-id", FieldSource: "src", FieldType: "my.type", FieldTraceID: "tid", FieldTraceParent: "tid", FieldTraceState: "a=b", FieldTopic: "orders", FieldExpiration: "2026-03-01T12:01:30Z"} {
		if ev[k] != v {
			t.Errorf("%s = %v, want %v", k, ev[k], v)
		}
	}
	req.Metadata["cloudevent.traceparent"] = "tp2"
	ev, _ = Wrap(req)
	if ev[FieldTraceID] != "tp2" || ev[FieldTraceParent] != "tp2" {
		t.Errorf("traceparent override must win: %v %v", ev[FieldTraceID], ev[FieldTraceParent])
	}
	for _, bad := range []string{"0", "-5", "x"} {
		req.Metadata["ttlInSeconds"] = bad
		ev, _ = Wrap(req)
		if _, ok := ev[FieldExpiration]; ok {
			t.Errorf("ttl %q must be ignored", bad)
		}
	}
	req.Metadata["ttlInSeconds"] = "10"
	req.BrokerTTL = true
	ev, _ = Wrap(req)
	if _, ok := ev[FieldExpiration]; ok {
		t.Error("broker TTL: no expiration")
	}
}

func TestWrapCallerEnvelope(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		traceP  string
		want    map[string]any
		wantErr bool
	}{
		{
			name: "completed", body: `{"id":"c1","data":{"n":1},"datacontenttype":"application/json","topic":"wrong","custom":"x"}`, traceP: tp,
			want: map[string]any{FieldID: "c1", FieldSource: DefaultSource, FieldType: DefaultType, FieldSpecVersion: "1.0", FieldTopic: "orders", FieldPubsubName: "ps", FieldTraceParent: tp, FieldTraceID: tp, FieldTime: "2026-03-01T12:00:00Z", "custom": "x", FieldDataContentType: "application/json"},
		},
		{
			name: "kept", body: `{"id":"c2","source":"s","type":"t","specversion":"1.0","time":"2020-01-01T00:00:00Z","traceparent":"mine"}`, traceP: "",
			want: map[string]any{FieldID: "c2", FieldSource: "s", FieldType: "t", FieldTime: "2020-01-01T00:00:00Z", FieldTraceParent: "mine"},
		},
		{
			name: "id generated", body: `{"data":"x"}`,
			want: map[string]any{FieldSource: DefaultSource},
		},
		{name: "not json", body: `{`, wantErr: true},
		{name: "null", body: `null`, wantErr: true},
		{name: "array", body: `[1]`, wantErr: true},
		{name: "trailing", body: `{} {}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := base("application/cloudevents+json; charset=utf-8", tt.body)
			req.TraceParent, req.TraceState = tt.traceP, ""
			ev, err := Wrap(req)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want error, got %v", ev)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if ev[k] != v {
					t.Errorf("%s = %v, want %v", k, ev[k], v)
				}
			}
			if String(ev, FieldID) == "" {
				t.Error("id missing")
			}
		})
	}
}

func TestParseExpiredRaw(t *testing.T) {
	ev, err := Parse([]byte(`{"id":"1","expiration":"2026-03-01T11:59:59Z","data":{"n":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !Expired(ev, now) {
		t.Error("should be expired")
	}
	if Expired(ev, now.Add(-time.Hour)) {
		t.Error("not yet expired")
	}
	if Expired(Event{FieldExpiration: "garbage"}, now) || Expired(Event{}, now) {
		t.Error("missing/garbage never expires")
	}
	if _, err := Parse([]byte(`null`)); !errors.Is(err, ErrNotObject) {
		t.Errorf("null: %v", err)
	}
	raw := FromRawPayload([]byte("hi"), "t", "p")
	if raw[FieldDataBase64] != "aGk=" || raw[FieldDataContentType] != "application/octet-stream" || raw[FieldTopic] != "t" {
		t.Errorf("raw = %v", raw)
	}
}

func TestData(t *testing.T) {
	tests := []struct {
		name    string
		ev      Event
		want    string
		wantErr bool
	}{
		{"base64", Event{FieldDataBase64: "aGk="}, "hi", false},
		{"bad base64", Event{FieldDataBase64: "%%"}, "", true},
		{"base64 not string", Event{FieldDataBase64: 1.0}, "", true},
		{"text", Event{FieldData: "hi", FieldDataContentType: "text/plain"}, "hi", false},
		{"text not string", Event{FieldData: 1.0, FieldDataContentType: "text/plain"}, "", true},
		{"json", Event{FieldData: map[string]any{"a": 1.0}, FieldDataContentType: "application/json"}, `{"a":1}`, false},
		{"ce json", Event{FieldData: "s", FieldDataContentType: ContentType}, `"s"`, false},
		{"other", Event{FieldData: "s", FieldDataContentType: "image/png"}, "", false},
		{"none", Event{}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Data(tt.ev)
			if (err != nil) != tt.wantErr || string(b) != tt.want {
				t.Errorf("Data = %q, %v; want %q (err %v)", b, err, tt.want, tt.wantErr)
			}
		})
	}
	ext := Extensions(Event{FieldID: "1", FieldData: "x", FieldTopic: "t", "custom": 2.0})
	if !reflect.DeepEqual(ext, map[string]any{FieldTopic: "t", "custom": 2.0}) {
		t.Errorf("extensions = %v", ext)
	}
}

// FuzzCloudEvent wraps arbitrary bodies, as caller envelopes and as data:
// it must never panic, and whatever it accepts must encode to an envelope
// that decodes again with the fields subscribers rely on.
func FuzzCloudEvent(f *testing.F) {
	seeds := []struct{ ct, body string }{
		{ContentType, `{"id":"1","data":{"a":[1,2,{"b":null}]}}`},
		{ContentType, `{"specversion":"0.3","time":5,"topic":["x"]}`},
		{ContentType, `{`},
		{ContentType, `null`},
		{ContentType, `"str"`},
		{ContentType, `{"data_base64":"AAH/"}`},
		{"application/json", `{"n":1e400}`},
		{"application/json", `12345678901234567890123`},
		{"text/plain", "\xff\xfe not utf8"},
		{"application/octet-stream", "\x00"},
		{"", ""},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body), "60")
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte, ttl string) {
		req := Request{Data: body, DataContentType: ct, Topic: "t", PubsubName: "p", Source: "app", Metadata: map[string]string{MetadataTTLInSeconds: ttl}, Now: now}
		ev, err := Wrap(req)
		if err != nil {
			if !IsCloudEvent(ct) {
				t.Fatalf("only caller envelopes may fail, got %v", err)
			}
			return
		}
		b, err := Marshal(ev)
		if err != nil {
			// Only possible for numbers JSON cannot re-encode; none are produced.
			t.Fatalf("marshal: %v", err)
		}
		back, err := Parse(b)
		if err != nil {
			t.Fatalf("parse own envelope %s: %v", b, err)
		}
		if back[FieldTopic] != "t" || back[FieldPubsubName] != "p" {
			t.Fatalf("routing fields lost: %s", b)
		}
		for _, k := range []string{FieldID, FieldSource, FieldType, FieldSpecVersion} {
			if back[k] == nil {
				t.Fatalf("%s missing: %s", k, b)
			}
		}
	})
}
