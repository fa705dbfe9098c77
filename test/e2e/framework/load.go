package framework

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// EchoLoad posts distinct bodies to an echo endpoint from several workers
// without pause and counts the calls that came back intact.
type EchoLoad struct {
	OK, Failed atomic.Int64
	firstErr   atomic.Value
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// StartEchoLoad starts workers posting to url until Stop is called or ctx ends.
func StartEchoLoad(ctx context.Context, url string, workers int) *EchoLoad {
	ctx, cancel := context.WithCancel(ctx)
	l := &EchoLoad{cancel: cancel}
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				want := fmt.Sprintf("w%d-%d", w, i)
				resp, err := client.Post(url, "text/plain", strings.NewReader(want))
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					l.fail(err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || string(b) != want {
					l.fail(fmt.Sprintf("status %d body %q", resp.StatusCode, b))
					continue
				}
				l.OK.Add(1)
			}
		}()
	}
	return l
}

func (l *EchoLoad) fail(msg string) {
	l.Failed.Add(1)
	l.firstErr.CompareAndSwap(nil, msg)
}

// FirstError returns the first failure seen, or nil.
func (l *EchoLoad) FirstError() any { return l.firstErr.Load() }

// Stop ends the load and waits for the workers.
func (l *EchoLoad) Stop() {
	l.cancel()
	l.wg.Wait()
}
