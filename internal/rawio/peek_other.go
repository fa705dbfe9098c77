//go:build !unix

package rawio

// peek cannot look at a socket here.
func peek(uintptr) error { return errNoPeek }
