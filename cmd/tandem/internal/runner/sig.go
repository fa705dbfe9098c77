package runner

import (
	"io"
	"syscall"
)

const (
	sigterm = syscall.SIGTERM
	sigkill = syscall.SIGKILL
)

func multiWriter(ws ...io.Writer) io.Writer { return io.MultiWriter(ws...) }

func httpStatus(url string) int {
	resp, err := quickClient.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
