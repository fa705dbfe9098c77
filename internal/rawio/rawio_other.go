//go:build !linux || race

package rawio

import "net"

// Enabled reports whether this build makes raw reads and writes.
const Enabled = false

// Wrap returns c: this build keeps package net's reads and writes.
func Wrap(c net.Conn) net.Conn { return c }

// connIdleOpen: this build has no Conn of its own (IdleOpen peeks the
// generic way).
func connIdleOpen(net.Conn) (open, ok bool) { return false, false }
