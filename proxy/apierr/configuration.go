package apierr

import (
	"fmt"
	"net/http"

	"google.golang.org/grpc/codes"
)

// Dapr's configuration error codes.
const (
	CodeConfigurationStoreNotConfigured = "ERR_CONFIGURATION_STORE_NOT_CONFIGURED"
	CodeConfigurationStoreNotFound      = "ERR_CONFIGURATION_STORE_NOT_FOUND"
	CodeConfigurationGet                = "ERR_CONFIGURATION_GET"
	CodeConfigurationSubscribe          = "ERR_CONFIGURATION_SUBSCRIBE"
	CodeConfigurationUnsubscribe        = "ERR_CONFIGURATION_UNSUBSCRIBE"
)

func configurationErr(code string, httpStatus int, grpcCode codes.Code, msg string) *Error {
	return (&Error{Code: code, HTTPStatus: httpStatus, GRPCCode: grpcCode, Message: msg}).withErrorInfo(code, nil)
}

// ConfigurationStoresNotConfigured: no configuration store is loaded.
func ConfigurationStoresNotConfigured() *Error {
	return configurationErr(CodeConfigurationStoreNotConfigured, http.StatusInternalServerError, codes.FailedPrecondition, "configuration stores not configured")
}

// ConfigurationStoreNotFound: no configuration store by that name (daprd
// answers 400 over HTTP, InvalidArgument over gRPC).
func ConfigurationStoreNotFound(store string) *Error {
	return configurationErr(CodeConfigurationStoreNotFound, http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf("configuration store %s not found", store))
}

// ConfigurationGet is a failed read.
func ConfigurationGet(keys []string, store string, err error) *Error {
	return configurationErr(CodeConfigurationGet, http.StatusInternalServerError, codes.Internal, fmt.Sprintf("failed to get %v from Configuration store %s: %v", keys, store, err))
}

// ConfigurationSubscribe is a failed subscription.
func ConfigurationSubscribe(keys []string, store string, err error) *Error {
	return configurationErr(CodeConfigurationSubscribe, http.StatusInternalServerError, codes.InvalidArgument, fmt.Sprintf("failed to subscribe %v from Configuration store %s: %v", keys, store, err))
}

// ConfigurationUnsubscribe is a failed unsubscription.
func ConfigurationUnsubscribe(id string, err error) *Error {
	return configurationErr(CodeConfigurationUnsubscribe, http.StatusInternalServerError, codes.Internal, fmt.Sprintf("failed to unsubscribe to configuration request %s: %v", id, err))
}
