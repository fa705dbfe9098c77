package pubsub

import (
	"context"
	"testing"
	"testing/synctest"
)

func TestLifecycle(t *testing.T) {
	t.Run("close stops Go and waits for it", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var l Lifecycle
			finished := false
			started := make(chan struct{})
			if !l.Go(context.Background(), func(ctx context.Context) {
				close(started)
				<-ctx.Done()
				finished = true
			}) {
				t.Fatal("Go refused before Close")
			}
			<-started
			if !l.Close() {
				t.Fatal("first Close reported false")
			}
			if !finished {
				t.Fatal("Close returned before the goroutine ended")
			}
			if l.Close() {
				t.Fatal("second Close reported true")
			}
		})
	})
	t.Run("parent context ends fn alone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var l Lifecycle
			parent, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			l.Go(parent, func(ctx context.Context) { <-ctx.Done(); close(done) })
			cancel()
			<-done
			if l.Closed() {
				t.Fatal("ending one goroutine closed the lifecycle")
			}
			select {
			case <-l.Stopping():
				t.Fatal("Stopping closed before Close")
			default:
			}
			l.Close()
		})
	})
	t.Run("Close waits for Enter until Exit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var l Lifecycle
			if !l.Enter() {
				t.Fatal("Enter refused before Close")
			}
			closed := make(chan struct{})
			go func() { l.Close(); close(closed) }()
			<-l.Stopping()
			synctest.Wait()
			select {
			case <-closed:
				t.Fatal("Close returned while work was held")
			default:
			}
			l.Exit()
			<-closed
		})
	})
	t.Run("after Close nothing starts", func(t *testing.T) {
		var l Lifecycle
		l.Close()
		if !l.Closed() {
			t.Fatal("Closed is false after Close")
		}
		if l.Enter() {
			t.Fatal("Enter accepted after Close")
		}
		if l.Go(context.Background(), func(context.Context) { t.Error("fn ran after Close") }) {
			t.Fatal("Go accepted after Close")
		}
		<-l.Stopping()
	})
}
