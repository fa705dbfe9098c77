package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tandemrun/tandem/components/crypto/encv1"
	"github.com/tandemrun/tandem/proxy/api"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// daprd's request headers of the cryptography API.
const (
	hdrCryptoKeyName           = "dapr-key-name"
	hdrCryptoKeyWrapAlgorithm  = "dapr-key-wrap-algorithm"
	hdrCryptoCipher            = "dapr-data-encryption-cipher"
	hdrCryptoOmitDecryptionKey = "dapr-omit-decryption-key-name"
	hdrCryptoDecryptionKeyName = "dapr-decryption-key-name"
)

// registerCrypto adds the cryptography routes (v1.0-alpha1) when
// cfg.Crypto is set.
func (h *Handler) registerCrypto() {
	if h.cfg.Crypto == nil {
		return
	}
	h.route("PUT /v1.0-alpha1/crypto/{name}/encrypt", h.cryptoEncrypt)
	h.route("PUT /v1.0-alpha1/crypto/{name}/decrypt", h.cryptoDecrypt)
}

// truthy is daprd's kit/strings.IsTruthy.
func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "y", "yes", "true", "t", "on", "1":
		return true
	}
	return false
}

// cryptoEncrypt is PUT /v1.0-alpha1/crypto/{name}/encrypt: the body,
// encrypted in Dapr's dapr.io/enc/v1 format, streamed back.
func (h *Handler) cryptoEncrypt(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := h.cfg.Crypto.Check(name); err != nil {
		h.writeErr(w, err)
		return
	}
	o := api.EncryptOptions{
		Component:         name,
		KeyName:           r.Header.Get(hdrCryptoKeyName),
		KeyWrapAlgorithm:  r.Header.Get(hdrCryptoKeyWrapAlgorithm),
		Cipher:            r.Header.Get(hdrCryptoCipher),
		DecryptionKeyName: r.Header.Get(hdrCryptoDecryptionKeyName),
		OmitKeyName:       truthy(r.Header.Get(hdrCryptoOmitDecryptionKey)),
	}
	if o.KeyName == "" {
		h.writeErr(w, apierr.BadRequest("missing header '%s'", hdrCryptoKeyName))
		return
	}
	if o.KeyWrapAlgorithm == "" {
		h.writeErr(w, apierr.BadRequest("missing header '%s'", hdrCryptoKeyWrapAlgorithm))
		return
	}
	out, err := h.cfg.Crypto.Encrypt(r.Context(), r.Body, o)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	h.streamCrypto(w, out)
}

// cryptoDecrypt is PUT /v1.0-alpha1/crypto/{name}/decrypt.
func (h *Handler) cryptoDecrypt(w http.ResponseWriter, r *http.Request) {
	out, err := h.cfg.Crypto.Decrypt(r.Context(), r.Body, api.DecryptOptions{
		Component: r.PathValue("name"), KeyName: r.Header.Get(hdrCryptoKeyName),
	})
	if err != nil {
		h.writeErr(w, h.cryptoBodyErr(err))
		return
	}
	h.streamCrypto(w, out)
}

func (h *Handler) cryptoBodyErr(err error) error {
	if errors.Is(err, errBodyTooLarge) {
		return h.bodyErr(err)
	}
	return err
}

// streamCrypto answers 200 with out as it is produced. The first segment
// is read before the status is written, so that an error there gets
// Dapr's error body; a later one (a tampered segment) aborts the response,
// so that a client never takes a cut document for a whole one.
func (h *Handler) streamCrypto(w http.ResponseWriter, out io.Reader) {
	// HTTP/1.1 stops reading the request body once the response starts,
	// unless told otherwise: the body is still being read here.
	_ = http.NewResponseController(w).EnableFullDuplex()
	buf := make([]byte, encv1.SegmentSize+encv1.SegmentOverhead)
	n, err := io.ReadFull(out, buf)
	done := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !done {
		h.writeErr(w, h.cryptoBodyErr(api.StreamError(err)))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if done {
		w.Header().Set("Content-Length", strconv.Itoa(n))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(buf[:n]); err != nil || done {
		return
	}
	if _, err := io.CopyBuffer(w, out, buf); err != nil {
		h.log.Debug("crypto stream failed after the response started; aborting it", "error", err)
		panic(http.ErrAbortHandler)
	}
}
