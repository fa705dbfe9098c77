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

// Metrics summarises a sidecar's Prometheus text exposition. Counters that
// have seen no traffic yet are absent and read as zero.
type Metrics struct {
	RSSBytes      float64 `json:"rssBytes"`
	CPUSeconds    float64 `json:"cpuSeconds"`
	CertExpiry    float64 `json:"certExpiry,omitempty"` // Unix seconds
	CertRotations float64 `json:"certRotations"`
	// InvocationsSent and InvocationsReceived count service invocations to
	// and from other apps' sidecars; LatencyMs is the mean time to a
	// response for those sent.
	InvocationsSent     float64 `json:"invocationsSent"`
	InvocationsReceived float64 `json:"invocationsReceived"`
	LatencyMs           float64 `json:"latencyMs"`
	// SentTo counts invocations sent per destination app ID.
	SentTo map[string]float64 `json:"sentTo,omitempty"`
	// APIRequests counts requests served by the Dapr HTTP and gRPC APIs.
	APIRequests float64 `json:"apiRequests"`
	// Families lists every dapr_* and tandem_* metric (histogram buckets
	// left out), summed over labels.
	Families []Family `json:"families"`
}

// Family is one metric summed over its labels.
type Family struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// Dapr's service invocation metric names (tandemd uses the same).
const (
	invSent    = "dapr_runtime_service_invocation_req_sent_total"
	invLatency = "dapr_runtime_service_invocation_res_recv_latency_ms"
)

// label returns the value of label key in a sample line ("" if absent).
func label(line, key string) string {
	_, rest, ok := strings.Cut(line, key+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
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
	sentTo := map[string]float64{}
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
		if name == invSent {
			if dst := label(line, "dst_app_id"); dst != "" {
				sentTo[dst] += v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	m := &Metrics{
		RSSBytes:            sums["process_resident_memory_bytes"],
		CPUSeconds:          sums["process_cpu_seconds_total"],
		CertExpiry:          sums["tandem_workload_cert_expiry_timestamp_seconds"],
		CertRotations:       sums["dapr_runtime_mtls_workload_cert_rotated_total"],
		InvocationsSent:     sums[invSent],
		InvocationsReceived: sums["dapr_runtime_service_invocation_req_recv_total"],
		APIRequests:         sums["dapr_http_server_request_count"] + sums["dapr_grpc_io_server_completed_rpcs"],
		SentTo:              sentTo,
	}
	if n := sums[invLatency+"_count"]; n > 0 {
		m.LatencyMs = sums[invLatency+"_sum"] / n
	}
	for name, v := range sums {
		if (strings.HasPrefix(name, "dapr_") || strings.HasPrefix(name, "tandem_")) && !strings.HasSuffix(name, "_bucket") {
			m.Families = append(m.Families, Family{Name: name, Value: v})
		}
	}
	sort.Slice(m.Families, func(i, j int) bool { return m.Families[i].Name < m.Families[j].Name })
	return m, nil
}
