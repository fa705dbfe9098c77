//go:build !unix

package invoke

func processCPU() int64 { return 0 }
