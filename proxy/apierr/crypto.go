package apierr

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
)

// Dapr's cryptography error codes.
const (
	CodeCrypto                       = "ERR_CRYPTO"
	CodeCryptoKey                    = "ERR_CRYPTO_KEY"
	CodeCryptoProviderNotFound       = "ERR_CRYPTO_PROVIDER_NOT_FOUND"
	CodeCryptoProvidersNotConfigured = "ERR_CRYPTO_PROVIDERS_NOT_CONFIGURED"
)

// CryptoProvidersNotConfigured: no crypto component is loaded.
func CryptoProvidersNotConfigured() *Error {
	return &Error{Code: CodeCryptoProvidersNotConfigured, HTTPStatus: http.StatusInternalServerError, GRPCCode: codes.Internal,
		Message: "crypto providers not configured"}
}

// CryptoProviderNotFound: no crypto component by that name.
func CryptoProviderNotFound(name string) *Error {
	return &Error{Code: CodeCryptoProviderNotFound, HTTPStatus: http.StatusBadRequest, GRPCCode: codes.InvalidArgument,
		Message: fmt.Sprintf("crypto provider %s not found", name)}
}

// CryptoGetKey is a key that could not be retrieved.
func CryptoGetKey(name string, err error) *Error {
	return &Error{Code: CodeCryptoKey, HTTPStatus: http.StatusInternalServerError, GRPCCode: codes.Internal,
		Message: fmt.Sprintf("failed to retrieve key %s: %v", name, err)}
}

// CryptoOperation is a failed cryptographic operation; what is a string
// or an error, as daprd formats it.
func CryptoOperation(what any) *Error {
	return &Error{Code: CodeCrypto, HTTPStatus: http.StatusInternalServerError, GRPCCode: codes.Internal,
		Message: fmt.Sprintf("failed to perform operation: %v", what)}
}
