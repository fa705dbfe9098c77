package apiaccess

import (
	"errors"
	"fmt"
	"strings"

	"github.com/tandemrun/tandem/config"
)

// Rule protocols.
const (
	ProtocolHTTP = "http"
	ProtocolGRPC = "grpc"
)

// Rules is a compiled spec.api. The zero value (and nil) allows everything.
type Rules struct {
	// httpAllowed and httpDenied hold "<version>/<name>" keys, as daprd's
	// GetRulesByProtocol builds them.
	httpAllowed, httpDenied map[string]struct{}
	// grpcAllowed and grpcDenied hold full gRPC method names.
	grpcAllowed, grpcDenied map[string]struct{}
	warnings                []string
}

// Compile checks and compiles api. A rule with a protocol other than http,
// grpc or empty, or without a name or version, is an error.
func Compile(api config.API) (*Rules, error) {
	r := &Rules{
		httpAllowed: map[string]struct{}{}, httpDenied: map[string]struct{}{},
		grpcAllowed: map[string]struct{}{}, grpcDenied: map[string]struct{}{},
	}
	var errs []error
	for _, list := range []struct {
		field      string
		rules      []config.APIRule
		http, grpc map[string]struct{}
	}{
		{"spec.api.allowed", api.Allowed, r.httpAllowed, r.grpcAllowed},
		{"spec.api.denied", api.Denied, r.httpDenied, r.grpcDenied},
	} {
		for i, rule := range list.rules {
			where := fmt.Sprintf("%s[%d]", list.field, i)
			if rule.Name == "" || rule.Version == "" {
				errs = append(errs, fmt.Errorf("%s: name and version are required (e.g. name: state, version: v1.0)", where))
				continue
			}
			switch strings.ToLower(rule.Protocol) {
			case ProtocolHTTP:
				list.http[rule.Version+"/"+rule.Name] = struct{}{}
			case ProtocolGRPC:
				methods := grpcGroups[rule.Name+"."+rule.Version]
				if len(methods) == 0 {
					r.warnings = append(r.warnings, fmt.Sprintf("%s: no gRPC API is named %s %s; the rule has no effect (gRPC versions are v1, v1alpha1, ...)", where, rule.Name, rule.Version))
				}
				for _, m := range methods {
					list.grpc[runtimePrefix+"v1.Dapr/"+m] = struct{}{}
				}
			case "":
				r.warnings = append(r.warnings, fmt.Sprintf("%s: no protocol; like daprd, the rule is ignored: add protocol: http or protocol: grpc", where))
			default:
				errs = append(errs, fmt.Errorf("%s: protocol %q is not valid; use http or grpc", where, rule.Protocol))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// Warnings lists rules that have no effect.
func (r *Rules) Warnings() []string {
	if r == nil {
		return nil
	}
	return r.warnings
}

// HTTPActive reports whether any HTTP rule restricts the HTTP API.
func (r *Rules) HTTPActive() bool {
	return r != nil && (len(r.httpAllowed) > 0 || len(r.httpDenied) > 0)
}

// GRPCActive reports whether any gRPC rule restricts the gRPC API.
func (r *Rules) GRPCActive() bool {
	return r != nil && (len(r.grpcAllowed) > 0 || len(r.grpcDenied) > 0)
}
