//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sqlite

import "os"

// Without flock(2) the writers of the file share it through SQLite's lock
// alone.
const flockSupported = false

func tryFlock(*os.File, int) (bool, error) { return false, errNoFlock }
