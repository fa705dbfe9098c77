package inspect

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Metrics summarises a sidecar's Prometheus text exposition.
type Metrics struct {
	RSSBytes      float64 `json:"rssBytes"`
	CPUSeconds    float64 `json:"cpuSeconds"`
	CertExpiry    float64 `json:"certExpiry,omitempty"` // Unix seconds
	CertRotations float64 `json:"certRotations"`
	// Invocations sums the *_count series of request-latency histograms
	// whose name mentions invocation or requests; LatencyMs is their mean.
	Invocations float64 `json:"invocations"`
	LatencyMs   float64 `json:"latencyMs"`
	// Families lists every dapr_* and tandem_* metric, summed over labels.
	Families []Family `json:"families"`
}

// Family is one metric summed over its labels.
type Family struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// FetchMetrics GETs url and summarises it.
func FetchMetrics(ctx context.Context, url string) (*Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return ParseMetrics(io.LimitReader(resp.Body, 8<<20))
}

// ParseMetrics reads the Prometheus text format (samples only; comments and
// timestamps are skipped).
func ParseMetrics(r io.Reader) (*Metrics, error) {
	sums := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				continue
			}
			rest = rest[j+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		sums[name] += v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	m := &Metrics{
		RSSBytes:      sums["process_resident_memory_bytes"],
		CPUSeconds:    sums["process_cpu_seconds_total"],
		CertExpiry:    sums["tandem_workload_cert_expiry_timestamp_seconds"],
		CertRotations: sums["dapr_runtime_mtls_workload_cert_rotated_total"],
	}
	var latencySum float64
	for name, v := range sums {
		if strings.HasPrefix(name, "dapr_") || strings.HasPrefix(name, "tandem_") {
			m.Families = append(m.Families, Family{Name: name, Value: v})
		}
		base, ok := strings.CutSuffix(name, "_count")
		if !ok || !(strings.Contains(base, "invocation") || strings.Contains(base, "request")) ||
			!(strings.Contains(base, "latency") || strings.Contains(base, "duration")) {
			continue
		}
		if strings.Contains(base, "client") { // the caller's view of the same calls
			continue
		}
		m.Invocations += v
		latencySum += sums[base+"_sum"]
	}
	if m.Invocations > 0 {
		// Dapr's service-invocation latency histograms are in milliseconds.
		m.LatencyMs = latencySum / m.Invocations
	}
	sort.Slice(m.Families, func(i, j int) bool { return m.Families[i].Name < m.Families[j].Name })
	return m, nil
}
