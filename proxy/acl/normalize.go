package acl

import (
	"fmt"
	"path"
	"strings"
)

// normalize cleans a method path before matching, so that "/admin/../x",
// "//admin" and "/%61dmin" cannot slip past a rule for "/admin": escapes of
// unreserved characters are decoded (others upper-cased), then dot
// segments, duplicate and trailing slashes are removed. A leading "/" is
// kept if there was one ("../x" becomes "x", "///x" becomes "/x"). Methods with '#', '?' or control characters are refused, as
// Dapr refuses them.
func normalize(method string) (string, error) {
	for i := 0; i < len(method); i++ {
		switch b := method[i]; {
		case b == '#' || b == '?':
			return "", fmt.Errorf("method contains forbidden character %q", b)
		case b < 0x20 || b == 0x7f:
			return "", fmt.Errorf("method contains a control character at position %d", i)
		}
	}
	if strings.IndexByte(method, '%') >= 0 {
		method = decodeUnreserved(method)
	}
	if strings.HasPrefix(method, "/") {
		return path.Clean(method), nil
	}
	// Cleaning as a rooted path keeps ".." from climbing above the start.
	return path.Clean("/" + method)[1:], nil
}

// decodeUnreserved decodes %XX escapes of unreserved characters (RFC 3986:
// letters, digits, "-", ".", "_", "~") and upper-cases the hex of the rest.
func decodeUnreserved(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' || i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			b.WriteByte(s[i])
			continue
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteString(strings.ToUpper(s[i+1 : i+3]))
		}
		i += 2
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
