package api

// State is the state API. (Stub: being written.)
type State struct{}
