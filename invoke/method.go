package invoke

import (
	"fmt"
	"path"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NormalizeMethod is daprd's check of an invoked method name, applied by
// the caller before resolving the target and by the callee before access
// control, so both see the same name: '#', '?' and control characters
// (NUL, CR, DEL...) are refused (each would let the name the ACL checks
// differ from the path the app serves), and "." / ".." segments and
// duplicate slashes are resolved without ever leaving the root. The
// result has no leading "../" and may be "". Percent signs are kept as is.
func NormalizeMethod(method string) (string, error) {
	if i := strings.IndexAny(method, "#?"); i >= 0 {
		return "", fmt.Errorf("method contains forbidden character %q at position %d: %q", method[i], i, method)
	}
	for i := range len(method) {
		if b := method[i]; b < 0x20 || b == 0x7f {
			return "", fmt.Errorf("method contains control character at position %d: %q", i, method)
		}
	}
	cleaned := path.Clean(method)
	for strings.HasPrefix(cleaned, "../") {
		cleaned = cleaned[len("../"):]
	}
	if cleaned == "." || cleaned == ".." {
		cleaned = ""
	}
	return cleaned, nil
}

// normalizeRequest applies NormalizeMethod to req's method in place; a
// refused name is codes.InvalidArgument, as in daprd.
func normalizeRequest(req *Request) error {
	msg := req.Message.GetMessage()
	if msg == nil {
		return nil
	}
	m, err := NormalizeMethod(msg.GetMethod())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "invalid method: %v", err)
	}
	msg.Method = m
	return nil
}
