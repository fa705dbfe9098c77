// Package rawio gives TCP connections reads and writes that skip the Go
// runtime's system-call bookkeeping.
//
// A net.Conn's Read and Write enter the kernel through syscall.Syscall,
// which tells the scheduler that the goroutine may block: it wakes the
// runtime's monitor thread (sysmon) if that was asleep, and the monitor
// then polls every 20 µs for as long as the process is busy, taking back
// any P whose system call outlasts a tick and handing it to another
// thread. A sidecar makes several short socket calls per request, and
// sockets from package net never block (they are non-blocking, and wait
// for readiness in the runtime's network poller), so all of that is
// overhead: profiles of tandemd at 1000 requests a second put a fifth of
// its CPU in sysmon alone, and most of its context switches.
//
// Conn makes the same calls with syscall.RawSyscall, through the
// connection's syscall.RawConn, so that waiting for readiness, deadlines
// and Close behave exactly as before. Everything else is the wrapped
// *net.TCPConn's. Listener wraps what a listener accepts; Wrap wraps a
// dialed connection. Builds other than Linux without the race detector
// (whose happens-before edges through the kernel only syscall.Read and
// syscall.Write record) keep the plain connection. IdleOpen, the check of
// an idle pooled connection before reuse, peeks the same raw way.
//
// Measured with TestInvokeLoad (TANDEM_BENCH_PERF=1, perf stat and perf
// record of both sidecars), at 1000 requests a second staggered: context
// switches per request 6.5 -> 2.7 per sidecar, sysmon 20 % -> 1 % of the
// samples, CPU per request 0.41 -> 0.29 ms for the pair; at the max rate
// 0.185 -> 0.112 ms and 5,748 -> 8,759 requests a second.
package rawio
