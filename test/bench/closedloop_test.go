package bench

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// opStats summarises the operations of one run.
type opStats struct {
	Ops      int64
	Errors   int64
	FirstErr string
	Duration time.Duration
	P50      time.Duration
	P90      time.Duration
	P99      time.Duration
	Max      time.Duration
}

// Rate is operations per second.
func (s opStats) Rate() float64 {
	if s.Duration <= 0 {
		return 0
	}
	return float64(s.Ops) / s.Duration.Seconds()
}

// closedLoop runs op from workers goroutines, each sending its next
// operation as soon as the previous one returned, for d; it returns the
// achieved rate and the latency percentiles of all operations.
func closedLoop(workers int, d time.Duration, op func(worker, i int) error) opStats {
	return pacedLoop(workers, 0, d, op)
}

// pacedLoop is closedLoop at qps operations per second in all (qps <= 0:
// as fast as they go), spread evenly over the workers as fortio -uniform
// does: worker w sends its operation i at (w + i*workers)/qps after the
// start, or as soon as its previous one returned if that is later. Each
// latency runs from the operation's actual start.
func pacedLoop(workers int, qps float64, d time.Duration, op func(worker, i int) error) opStats {
	lat := make([][]time.Duration, workers)
	errs := make([]int64, workers)
	var once sync.Once
	var first string
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, 1<<14)
			for i := 0; ; i++ {
				if qps > 0 {
					at := start.Add(time.Duration(float64(w+i*workers) / qps * float64(time.Second)))
					if !at.Before(deadline) {
						break
					}
					time.Sleep(time.Until(at))
				}
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				err := op(w, i)
				l = append(l, time.Since(t0))
				if err != nil {
					errs[w]++
					once.Do(func() { first = err.Error() })
				}
			}
			lat[w] = l
		}()
	}
	wg.Wait()
	s := summarize(slices.Concat(lat...))
	s.Duration = time.Since(start)
	for _, e := range errs {
		s.Errors += e
	}
	s.FirstErr = first
	return s
}

// summarize sorts ds and returns its count and percentiles.
func summarize(ds []time.Duration) opStats {
	slices.Sort(ds)
	return opStats{
		Ops: int64(len(ds)),
		P50: percentile(ds, 50), P90: percentile(ds, 90), P99: percentile(ds, 99),
		Max: percentile(ds, 100),
	}
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// reachable says whether something accepts TCP connections on addr.
func reachable(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// benchSeconds reads a duration in seconds from the environment.
func benchSeconds(t *testing.T, name string, def float64) time.Duration {
	return time.Duration(benchNum(t, name, def) * float64(time.Second))
}

// benchNum reads a non-negative number from the environment.
func benchNum(t *testing.T, name string, def float64) float64 {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var f float64
	if _, err := fmt.Sscan(v, &f); err != nil || f < 0 {
		t.Fatalf("%s=%q: want a non-negative number", name, v)
	}
	return f
}

// randomName returns prefix followed by 12 random hex digits.
func randomName(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// writeReportHead starts a report: its title, when, which commit, the
// machine, and the load average before and after the run.
func writeReportHead(b *strings.Builder, title, loadBefore, loadAfter string) {
	m := machine()
	fmt.Fprintf(b, "# %s\n\n", title)
	fmt.Fprintf(b, "- date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(b, "- commit: %s\n", commit())
	fmt.Fprintf(b, "- machine: %d CPUs (%s), GOMAXPROCS %d, kernel %s, %s\n", m.NProc, m.CPUModel, m.GOMAXPROCS, m.Kernel, m.GoVersion)
	fmt.Fprintf(b, "- load average (1, 5, 15 min) before: %s; after: %s (other work shares the machine)\n", loadBefore, loadAfter)
}

// writeBenchReport writes md to the file named by $envName, or to def.
func writeBenchReport(t *testing.T, envName, def, md string) {
	t.Helper()
	out := os.Getenv(envName)
	if out == "" {
		out = def
	}
	if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
		t.Fatalf("write %s: %v", out, err)
	}
	t.Logf("wrote %s", out)
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of 4 is the 2nd", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p90 of 10", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{"p99 of 10 is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"p100", ms(1, 2, 3), 100, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
			}
		})
	}
}

func TestClosedLoop(t *testing.T) {
	var mu sync.Mutex
	seen := map[int]int{}
	s := closedLoop(3, 50*time.Millisecond, func(w, i int) error {
		mu.Lock()
		seen[w]++
		mu.Unlock()
		time.Sleep(time.Millisecond)
		if i == 0 {
			return fmt.Errorf("first op of worker %d", w)
		}
		return nil
	})
	if len(seen) != 3 {
		t.Errorf("workers that ran: %d, want 3", len(seen))
	}
	if s.Errors != 3 || s.FirstErr == "" {
		t.Errorf("errors = %d (%q), want 3", s.Errors, s.FirstErr)
	}
	if s.Ops < 9 || s.P50 < time.Millisecond || s.Rate() <= 0 {
		t.Errorf("stats = %+v", s)
	}
}

func TestPacedLoop(t *testing.T) {
	var mu sync.Mutex
	var starts []time.Duration
	begin := time.Now()
	s := pacedLoop(4, 200, 500*time.Millisecond, func(w, i int) error {
		mu.Lock()
		starts = append(starts, time.Since(begin))
		mu.Unlock()
		return nil
	})
	// 200 per second for half a second: at most 100 operations, 5 ms
	// apart (fewer when a busy machine wakes a worker after the end).
	if s.Ops < 20 || s.Ops > 100 || s.Errors != 0 {
		t.Errorf("ops = %d, errors %d; want up to 100 and none", s.Ops, s.Errors)
	}
	slices.Sort(starts)
	var early int
	for i, at := range starts {
		if at < time.Duration(i)*5*time.Millisecond {
			early++
		}
	}
	if early > 0 {
		t.Errorf("%d operations started before their slot (starts %v)", early, starts)
	}
	if r := s.Rate(); r > 205 {
		t.Errorf("rate %.0f/s, want at most 200", r)
	}
}
