package state

import (
	"fmt"
	"strings"

	"github.com/tandemrun/tandem/components"
)

// Separator joins a key prefix and a key, as in Dapr ("myapp||order-1").
const Separator = "||"

// Key prefix strategies of Dapr's keyPrefix component metadata.
const (
	PrefixAppID     = "appid"
	PrefixName      = "name"
	PrefixNamespace = "namespace"
	PrefixNone      = "none"
)

// KeyPrefix turns an app's key into the key stored in the backend, following
// the component's keyPrefix metadata exactly as Dapr does (so both runtimes
// read each other's data):
//
//	appid (default)  <appId>||<key>   (just <key> when there is no app ID)
//	name             <storeName>||<key>
//	namespace        <namespace>.<appId>||<key>  (appid rule without namespace)
//	none             <key>
//	anything else    <that prefix, lowercased>||<key>
type KeyPrefix struct {
	strategy  string
	storeName string
	appID     string
	namespace string
}

// NewKeyPrefix reads the keyPrefix property of a component. A prefix
// containing "||" is an error, like in Dapr.
func NewKeyPrefix(md components.Metadata) (KeyPrefix, error) {
	s := strings.ToLower(md.String("keyPrefix", PrefixAppID))
	if strings.Contains(s, Separator) {
		return KeyPrefix{}, fmt.Errorf("component %q: metadata keyPrefix %q must not contain %q", md.Name, s, Separator)
	}
	return KeyPrefix{strategy: s, storeName: md.Name, appID: md.AppID, namespace: md.Namespace}, nil
}

// Key validates an app's key and returns the stored key.
func (p KeyPrefix) Key(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	switch p.strategy {
	case PrefixNone:
		return key, nil
	case PrefixName:
		return p.storeName + Separator + key, nil
	case PrefixAppID, "":
		if p.appID == "" {
			return key, nil
		}
		return p.appID + Separator + key, nil
	case PrefixNamespace:
		if p.appID == "" {
			return key, nil
		}
		if p.namespace == "" {
			return p.appID + Separator + key, nil
		}
		return p.namespace + "." + p.appID + Separator + key, nil
	default:
		return p.strategy + Separator + key, nil
	}
}

// Original strips the prefix from a stored key, as Dapr's
// GetOriginalStateKey does (the part after the first separator).
func (p KeyPrefix) Original(stored string) string { return OriginalKey(stored) }

// OriginalKey returns the part of a stored key after the first "||", or the
// key itself when it has none.
func OriginalKey(stored string) string {
	parts := strings.Split(stored, Separator)
	if len(parts) <= 1 {
		return stored
	}
	return parts[1]
}

// ErrIllegalKey is wrapped by ValidateKey errors; the API layer answers 400
// ERR_MALFORMED_REQUEST with Dapr's reason DAPR_STATE_ILLEGAL_KEY.
var ErrIllegalKey = fmt.Errorf("illegal state key: a key must not contain %q", Separator)

// ValidateKey rejects keys containing "||".
func ValidateKey(key string) error {
	if strings.Contains(key, Separator) {
		return fmt.Errorf("key %q: %w", key, ErrIllegalKey)
	}
	return nil
}
