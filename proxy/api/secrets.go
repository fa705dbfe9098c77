package api

// Secrets is the secrets API. (Stub: being written.)
type Secrets struct{}
