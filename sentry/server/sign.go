package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	sentryv1 "github.com/dapr/dapr/pkg/proto/sentry/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/jwtsvid"
)

// signError is a gRPC status plus the failure_total reason label.
type signError struct {
	reason string
	err    error
}

func fail(reason string, code codes.Code, msg string) *signError {
	return &signError{reason: reason, err: status.Error(code, msg)}
}

// SignCertificate implements dapr.proto.sentry.v1.CA.
func (s *Server) SignCertificate(ctx context.Context, req *sentryv1.SignCertificateRequest) (*sentryv1.SignCertificateResponse, error) {
	s.metrics.received.Inc()
	resp, serr := s.sign(ctx, req)
	if serr != nil {
		s.metrics.failure.WithLabelValues(serr.reason).Inc()
		s.log.Warn("certificate request refused", "app_id", req.GetId(), "namespace", req.GetNamespace(),
			"trust_domain", req.GetTrustDomain(), "reason", serr.reason, "error", serr.err)
		return nil, serr.err
	}
	s.metrics.success.Inc()
	return resp, nil
}

func (s *Server) sign(ctx context.Context, req *sentryv1.SignCertificateRequest) (*sentryv1.SignCertificateResponse, *signError) {
	which := req.GetTokenValidator()
	if which == sentryv1.SignCertificateRequest_UNKNOWN {
		which = s.defaultVal
	}
	if which == sentryv1.SignCertificateRequest_UNKNOWN {
		return nil, fail("validator", codes.InvalidArgument, "a validator name must be specified in this environment")
	}
	val, ok := s.vals[which]
	if !ok {
		return nil, fail("validator", codes.InvalidArgument, "the requested validator "+which.String()+" is not enabled")
	}
	id, err := val.Validate(ctx, req)
	if err != nil {
		return nil, fail("req_id_validation", codes.PermissionDenied, err.Error())
	}

	csr, serr := parseCSR(req.GetCertificateSigningRequest())
	if serr != nil {
		return nil, serr
	}
	// Dapr's sidecars send an empty CSR (the identity is in the request);
	// Tandem's put the SPIFFE ID in the URI SAN, which must then match.
	for _, u := range csr.URIs {
		got, err := spiffeid.FromURI(u)
		if err != nil || got != id {
			return nil, fail("csr_identity", codes.PermissionDenied,
				"the certificate signing request asks for "+u.String()+" but the request was validated as "+id.String())
		}
	}

	// One snapshot, so the chain and the anchors sent with it belong together.
	authority := s.CA()
	chain, err := authority.Sign(csr, id, 0, s.dnsNames(id)...)
	if err != nil {
		s.log.Error("signing failed", "spiffe_id", id.String(), "error", err)
		return nil, fail("cert_sign", codes.Internal, "failed to sign certificate")
	}
	leaf := chain[0]
	s.log.Info("certificate issued", "spiffe_id", id.String(), "serial", leaf.SerialNumber.String(),
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	resp := &sentryv1.SignCertificateResponse{
		WorkloadCertificate: ca.EncodeCertificates(chain),
		// As Dapr's sentry: one entry holding every trust anchor as PEM.
		TrustChainCertificates: [][]byte{authority.TrustAnchorsPEM()},
		ValidUntil:             timestamppb.New(leaf.NotAfter),
	}
	if iss := s.jwt.Load(); iss != nil {
		if serr := s.issueJWTs(iss, resp, id, req.GetJwtAudiences()); serr != nil {
			return nil, serr
		}
	}
	return resp, nil
}

// issueJWTs adds Dapr's JWT SVIDs to resp: jwt for the trust domain
// followed by the requested audiences, and per_audience_jwts holding one
// token for each of those audiences alone.
func (s *Server) issueJWTs(iss *jwtsvid.Issuer, resp *sentryv1.SignCertificateResponse, id spiffeid.ID, requested []string) *signError {
	audiences := append([]string{id.TrustDomain().Name()}, requested...)
	token, err := iss.Issue(id, audiences, 0)
	if err != nil {
		s.log.Error("jwt signing failed", "spiffe_id", id.String(), "error", err)
		return fail("jwt_sign", codes.Internal, "failed to generate JWT: "+err.Error())
	}
	resp.Jwt = wrapperspb.String(token)
	resp.PerAudienceJwts = make(map[string]*wrapperspb.StringValue, len(audiences))
	for _, aud := range audiences {
		token, err := iss.Issue(id, []string{aud}, 0)
		if err != nil {
			s.log.Error("jwt signing failed", "spiffe_id", id.String(), "audience", aud, "error", err)
			return fail("jwt_sign", codes.Internal, "failed to generate JWT for audience "+aud+": "+err.Error())
		}
		resp.PerAudienceJwts[aud] = wrapperspb.String(token)
	}
	return nil
}

// InjectorService is the Service the API server calls the injector's
// webhook through; the injector's certificate is valid for
// <InjectorService>.<namespace>.svc, the name the API server checks.
const InjectorService = "dapr-sidecar-injector"

// ScalerService is the Service KEDA reaches the scaler through
// (scalerAddress dapr-scaler.<namespace>.svc:6000); the scaler's
// certificate is valid for that name, with and without .cluster.local.
const ScalerService = "dapr-scaler"

// dnsNames are the host names id may serve TLS as, as Dapr's sentry names
// them. Only control plane services of sentry's own namespace and trust
// domain get any: the injector and the operator their webhooks' Services
// (which the API server checks), the scheduler its StatefulSet pods'
// names, which its embedded etcd peers check (under the trust domain, as
// Dapr's sentry names them outside a cluster), and Tandem's KEDA scaler
// its Service, which KEDA dials and checks (scalerAddress). The ID was
// validated, so it is that control plane pod asking.
func (s *Server) dnsNames(id spiffeid.ID) []string {
	td, ns := s.id.TrustDomain(), s.namespace
	is := func(name string) bool {
		want, err := spiffeid.FromSegments(td, "ns", ns, name)
		return err == nil && id == want
	}
	switch {
	case is("dapr-injector"):
		return []string{InjectorService + "." + ns + ".svc"}
	case is("dapr-operator"):
		return []string{"dapr-webhook." + ns + ".svc"}
	case is("dapr-scaler"):
		return []string{ScalerService + "." + ns + ".svc", ScalerService + "." + ns + ".svc.cluster.local"}
	case is("dapr-scheduler"):
		names := make([]string, 3)
		for i := range names {
			names[i] = fmt.Sprintf("dapr-scheduler-server-%d.dapr-scheduler-server.%s.svc.%s", i, ns, td.Name())
		}
		return names
	}
	return nil
}

// parseCSR accepts a PEM CSR (daprd sends "CERTIFICATE REQUEST"; daprd
// before 1.12 sent "CERTIFICATE") or, leniently, raw DER.
func parseCSR(data []byte) (*x509.CertificateRequest, *signError) {
	der := data
	if block, _ := pem.Decode(data); block != nil {
		if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" && block.Type != "CERTIFICATE" {
			return nil, fail("cert_parse", codes.InvalidArgument, "invalid certificate signing request: unexpected PEM block "+block.Type)
		}
		der = block.Bytes
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fail("cert_parse", codes.InvalidArgument, "invalid certificate signing request: failed to parse: "+err.Error())
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fail("cert_parse", codes.InvalidArgument, "invalid certificate signing request signature")
	}
	return csr, nil
}
