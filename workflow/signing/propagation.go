package signing

import (
	"errors"
	"fmt"

	"github.com/dapr/durabletask-go/api/protos"
)

// Propagated history (Dapr 1.18): the sidecar that hands a workflow's
// history to an activity or a child signs the chunk of its own events as
// one batch, chunk-local (from index 0, no previous signature), with the
// chunk's instance ID and workflow name bound into the signed input, and
// attaches the signature and its chain to the chunk. Chunks received from
// upstream pass on with their producers' signatures. A receiver verifies
// every chunk: its app ID, events, signatures and chains, that each chain
// names the chunk's app in the receiver's namespace and chains to the
// trust anchors.

// SignChunk signs chunk's events and attaches the signature and the
// signing chain, replacing any it had.
func (s *Signer) SignChunk(chunk *protos.PropagatedHistoryChunk) error {
	if len(chunk.GetRawEvents()) == 0 {
		return fmt.Errorf("sign propagated history: the chunk of app %q has no events", chunk.GetAppId())
	}
	b, err := s.sign(chunk.GetRawEvents(), 0, nil, nil, chunkBinding(chunk))
	if err != nil {
		return fmt.Errorf("sign propagated history chunk: %w", err)
	}
	if b.NewCert == nil {
		return errors.New("sign propagated history chunk: no signing certificate")
	}
	chunk.RawSignatures = [][]byte{b.Raw}
	chunk.SigningCertChains = [][]byte{b.NewCert.GetCertificate()}
	return nil
}

func chunkBinding(c *protos.PropagatedHistoryChunk) *binding {
	return &binding{instanceID: c.GetInstanceId(), workflowName: c.GetWorkflowName()}
}

// VerifyPropagated verifies every chunk of ph for a receiver in namespace
// ns and returns the chains its signatures used, in chunk order, each
// once: the receiver keeps them among its external certificates. Any
// chunk that fails fails the whole history.
func (s *Signer) VerifyPropagated(ph *protos.PropagatedHistory, ns string) ([][]byte, error) {
	if ns == "" {
		return nil, errors.New("verify propagated history: no namespace")
	}
	var used [][]byte
	seen := map[string]bool{}
	for i, c := range ph.GetChunks() {
		if c == nil {
			return nil, fmt.Errorf("chunk %d is nil", i)
		}
		app := c.GetAppId()
		if app == "" {
			return nil, fmt.Errorf("chunk %d: appId is empty", i)
		}
		if len(c.GetRawEvents()) == 0 {
			// A producer never sends a chunk without events: one that
			// comes empty signs nothing, whatever it carries.
			return nil, fmt.Errorf("chunk %d (app %q): empty rawEvents", i, app)
		}
		if len(c.GetRawSignatures()) == 0 {
			return nil, fmt.Errorf("chunk %d (app %q): missing rawSignatures for %d events", i, app, len(c.GetRawEvents()))
		}
		if len(c.GetSigningCertChains()) == 0 {
			return nil, fmt.Errorf("chunk %d (app %q): missing signingCertChains", i, app)
		}
		certs := make([]*protos.SigningCertificate, len(c.GetSigningCertChains()))
		for j, chain := range c.GetSigningCertChains() {
			if len(chain) == 0 {
				return nil, fmt.Errorf("chunk %d (app %q): cert chain %d is empty", i, app, j)
			}
			if err := CheckIdentity(chain, app, ns); err != nil {
				return nil, fmt.Errorf("chunk %d (app %q): cert chain %d identity mismatch: %w", i, app, j, err)
			}
			certs[j] = &protos.SigningCertificate{Certificate: chain}
		}
		idx, err := s.verifyChain(c.GetRawSignatures(), certs, c.GetRawEvents(), chunkBinding(c))
		if err != nil {
			return nil, fmt.Errorf("chunk %d (app %q): %w", i, app, err)
		}
		// Only the chains a verified signature used are trusted; any
		// other a chunk carries was never checked.
		for j, chain := range c.GetSigningCertChains() {
			if idx[uint64(j)] && !seen[string(chain)] {
				seen[string(chain)] = true
				used = append(used, chain)
			}
		}
	}
	return used, nil
}

// Signed reports whether any chunk of ph carries signatures or chains.
func Signed(ph *protos.PropagatedHistory) bool {
	for _, c := range ph.GetChunks() {
		if len(c.GetRawSignatures()) > 0 || len(c.GetSigningCertChains()) > 0 {
			return true
		}
	}
	return false
}
