package apierr

import "strings"

// Dapr's error categories (pkg/messages/errorcodes), the category label of
// dapr_error_code_total.
const (
	CategoryState             = "state"
	CategorySecret            = "secret"
	CategoryPubsub            = "pubsub"
	CategoryServiceInvocation = "service-invocation"
	CategoryHealth            = "health"
	CategoryCommon            = "common"
	CategoryWorkflow          = "workflow"
	CategoryLock              = "lock"
)

// categories holds the codes whose category does not follow from their
// name.
var categories = map[string]string{
	CodeDirectInvoke:                CategoryServiceInvocation,
	CodeHealthNotReady:              CategoryHealth,
	CodeOutboundHealthNotReady:      CategoryHealth,
	CodeHealthAppIDNotMatch:         CategoryHealth,
	CodePermissionDenied:            CategorySecret,
	CodeTopicEmpty:                  CategoryPubsub,
	CodeStateOperationNotSupported:  CategoryState,
	CodeSecretStoresNotConfigured:   CategorySecret,
	"ERR_PUBLISH_OUTBOX":            CategoryPubsub,
	"ERR_INVOKE_OUTPUT_BINDING":     "binding",
	"ERR_APP_CHANNEL_NIL":           CategoryCommon,
	"ERR_MALFORMED_REQUEST_DATA":    CategoryCommon,
	"ERR_CONFIGURATION_GET":         "configuration",
	"ERR_CONFIGURATION_SUBSCRIBE":   "configuration",
	"ERR_CONFIGURATION_UNSUBSCRIBE": "configuration",
	"ERR_TRY_LOCK":                  CategoryLock,
	"ERR_UNLOCK":                    CategoryLock,
}

// CategoryOf is the category Dapr gives an error code: from its table for
// the codes above, else from the code's name (ERR_STATE_*, ERR_SECRET_*,
// ERR_PUBSUB_*, DAPR_STATE_*, ..., the workflow API's ERR_*WORKFLOW* and
// ERR_INSTANCE_ID_*), else "common".
func CategoryOf(code string) string {
	if c, ok := categories[code]; ok {
		return c
	}
	name := strings.TrimPrefix(strings.TrimPrefix(code, "ERR_"), "DAPR_")
	// The workflow API's codes: ERR_GET_WORKFLOW, ERR_WORKFLOW_NAME_MISSING,
	// ERR_INSTANCE_ID_NOT_FOUND, ...
	if strings.Contains(name, "WORKFLOW") || strings.HasPrefix(name, "INSTANCE_ID_") {
		return CategoryWorkflow
	}
	for _, p := range []struct{ prefix, category string }{
		{"STATE_", CategoryState},
		{"SECRET_", CategorySecret},
		{"PUBSUB_", CategoryPubsub},
		{"ACTOR_", "actor"},
		{"CONFIGURATION_", "configuration"},
		{"CRYPTO", "crypto"},
		{"CONVERSATION_", "conversation"},
		{"LOCK_", "lock"},
		{"SCHEDULER_", "job"},
	} {
		if strings.HasPrefix(name, p.prefix) {
			return p.category
		}
	}
	return CategoryCommon
}
