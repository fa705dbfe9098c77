//go:build !linux

package main

import "os"

// unreadBytes cannot tell on this platform.
func unreadBytes(*os.File) (int, bool) { return 0, false }
