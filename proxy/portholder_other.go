//go:build !linux

package proxy

func portHolder(int) string { return "" }
