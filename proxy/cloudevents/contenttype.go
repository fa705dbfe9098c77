package cloudevents

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Content type tests with Dapr's rules (components-contrib contenttype):
// the media type is compared case-insensitively, parameters ignored.

// IsCloudEvent reports application/cloudevents+json.
func IsCloudEvent(ct string) bool { return isType(ct, ContentType) }

// IsJSON reports application/json.
func IsJSON(ct string) bool { return isType(ct, "application/json") }

// IsBinary reports application/octet-stream.
func IsBinary(ct string) bool { return isType(ct, "application/octet-stream") }

// IsString reports text/* and application/xml.
func IsString(ct string) bool {
	return strings.HasPrefix(strings.ToLower(ct), "text/") || isType(ct, "application/xml")
}

func isType(ct, want string) bool {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(ct, want)
}

// ErrUnexpectedData is returned (wrapped) by Data for an envelope whose
// data does not fit its content type.
var ErrUnexpectedData = errors.New("unexpected data type in cloud event")

// Data returns the event's payload bytes as Dapr hands them to gRPC apps:
// data_base64 decoded; string data for text content types; JSON data
// re-encoded for JSON and cloud event content types; nil otherwise.
func Data(ev Event) ([]byte, error) {
	if v, ok := ev[FieldDataBase64]; ok && v != nil {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("data_base64: %w", ErrUnexpectedData)
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("data_base64: %w", err)
		}
		return b, nil
	}
	v, ok := ev[FieldData]
	if !ok || v == nil {
		return nil, nil
	}
	ct := String(ev, FieldDataContentType)
	switch {
	case IsString(ct):
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("data for %s: %w", ct, ErrUnexpectedData)
		}
		return []byte(s), nil
	case IsJSON(ct) || IsCloudEvent(ct):
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		return b, nil
	}
	return nil, nil
}

// Extensions returns the fields of ev that the gRPC TopicEventRequest does
// not carry in its own fields (everything but id, source, type,
// specversion, datacontenttype, data and data_base64).
func Extensions(ev Event) map[string]any {
	out := make(map[string]any, len(ev))
	for k, v := range ev {
		switch k {
		case FieldID, FieldSource, FieldType, FieldSpecVersion, FieldDataContentType, FieldData, FieldDataBase64:
			continue
		}
		out[k] = v
	}
	return out
}
