package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseStatTicks(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{
			name: "plain",
			in:   "1234 (tandemd) S 1 1234 1234 0 -1 4194560 900 0 0 0 150 27 0 0 20 0 8 0 5000 1000000 3000 18446744073709551615",
			want: 177,
		},
		{
			name: "command with spaces and parentheses",
			in:   "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1",
			want: 7,
		},
		{name: "no command", in: "1 tandemd S 1", wantErr: true},
		{name: "truncated", in: "1 (x) S 1 2 3", wantErr: true},
		{name: "not a number", in: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a 4 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatTicks([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ticks = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Mem
		wantErr bool
	}{
		{
			name: "both",
			in:   "Name:\ttandemd\nVmPeak:\t 1000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n",
			want: Mem{RSS: 10 << 20, HWM: 20 << 20},
		},
		{
			name: "private and file pages",
			in:   "VmHWM:\t20480 kB\nVmRSS:\t10240 kB\nRssAnon:\t3072 kB\nRssFile:\t7168 kB\nRssShmem:\t0 kB\n",
			want: Mem{RSS: 10 << 20, HWM: 20 << 20, Anon: 3 << 20, File: 7 << 20},
		},
		{name: "kernel thread", in: "Name:\tkthreadd\nThreads:\t1\n", wantErr: true},
		{name: "bad unit", in: "VmHWM:\t1 MB\nVmRSS:\t1 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("mem = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestSelf reads this test process's own figures, so a change in the /proc
// layout shows up in the normal test run and not only in the benchmark.
func TestSelf(t *testing.T) {
	pc := NewProcCPU()
	if pc.Tick <= 0 || pc.Tick > 100*time.Millisecond {
		t.Fatalf("tick = %v", pc.Tick)
	}
	before, err := pc.CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	after, err := pc.CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after < before || after == 0 {
		t.Errorf("cpu went from %v to %v after %d spins", before, after, x)
	}
	s := StartRSSSampler(time.Millisecond, os.Getpid())
	time.Sleep(5 * time.Millisecond)
	if got := s.Stop(); len(got) != 1 || got[0] < 1<<20 {
		t.Errorf("sampled rss = %v, want one value above 1 MiB", got)
	}
	if got := s.AnonPeaks(); len(got) != 1 || got[0] == 0 || got[0] >= s.max[0] {
		t.Errorf("sampled private memory = %v, want one value above 0 and below VmRSS %d", got, s.max[0])
	}
	if _, err := ReadMem(-1); err == nil {
		t.Error("ReadMem(-1): want an error")
	}
}

func TestParseSmapsRollup(t *testing.T) {
	in := "55a6c603e000-7fffc3d94000 ---p 00000000 00:00 0   [rollup]\nRss:  1684 kB\nPss:  213 kB\nPss_Dirty:  112 kB\nPss_Anon:  112 kB\nPss_File:  101 kB\n"
	got, err := parseSmapsRollup([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if want := (PSS{Total: 213 << 10, Anon: 112 << 10, File: 101 << 10}); got != want {
		t.Errorf("pss = %+v, want %+v", got, want)
	}
	if _, err := parseSmapsRollup([]byte("Rss: 1 kB\n")); err == nil {
		t.Error("no Pss line: want an error")
	}
	if _, err := parseSmapsRollup([]byte("Pss: 1 MB\n")); err == nil {
		t.Error("bad unit: want an error")
	}
	if p, err := ReadPSS(os.Getpid()); err != nil || p.Total == 0 {
		t.Errorf("ReadPSS(self) = %+v, %v", p, err)
	}
}
