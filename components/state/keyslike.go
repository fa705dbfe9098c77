package state

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// DeleteWithPrefixRequest asks a PrefixDeleter to delete the keys under
// Prefix.
type DeleteWithPrefixRequest struct {
	Prefix string
}

// Validate refuses an empty prefix and, as Dapr does, appends the "||"
// separator when the prefix does not end with it.
func (r *DeleteWithPrefixRequest) Validate() error {
	if r.Prefix == "" || r.Prefix == Separator {
		return errors.New("delete with prefix: a prefix is required")
	}
	if !strings.HasSuffix(r.Prefix, Separator) {
		r.Prefix += Separator
	}
	return nil
}

// Matches reports whether key is one DeleteWithPrefix deletes: it starts
// with the (validated) prefix and has no further separator after it.
func (r *DeleteWithPrefixRequest) Matches(key string) bool {
	rest, ok := strings.CutPrefix(key, r.Prefix)
	return ok && !strings.Contains(rest, Separator)
}

// DeleteWithPrefixResponse says how many keys DeleteWithPrefix deleted.
type DeleteWithPrefixResponse struct {
	Count int64
}

// KeysLikeRequest asks a KeysLiker for the keys matching Pattern, a SQL LIKE
// pattern: % matches any run of characters, _ any one character, and a
// backslash escapes the next character.
type KeysLikeRequest struct {
	Pattern string
	// ContinuationToken is a previous response's token: the listing goes on
	// after the keys that response returned.
	ContinuationToken *string
	// PageSize, when set and not zero, caps the number of keys returned.
	PageSize *uint32
}

// Validate refuses an empty pattern.
func (r *KeysLikeRequest) Validate() error {
	if r.Pattern == "" {
		return errors.New("keys like: the pattern cannot be empty")
	}
	return nil
}

// KeysLikeResponse is a page of keys. ContinuationToken is set when more
// keys remain.
type KeysLikeResponse struct {
	Keys              []string
	ContinuationToken *string
}

// LikePattern compiles a SQL LIKE pattern (see KeysLikeRequest) into a
// regular expression matching whole keys, case-sensitively. A trailing lone
// backslash matches itself.
func LikePattern(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	escaped := false
	for _, r := range pattern {
		switch {
		case escaped:
			b.WriteString(regexp.QuoteMeta(string(r)))
			escaped = false
		case r == '\\':
			escaped = true
		case r == '%':
			b.WriteString(`.*`)
		case r == '_':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	if escaped {
		b.WriteString(`\\`)
	}
	b.WriteString(`)$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("keys like pattern %q: %w", pattern, err)
	}
	return re, nil
}
