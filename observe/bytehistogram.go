package observe

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// byteHistogramVec is a histogram of byte counts that buckets them as
// daprd's OpenCensus views do: a bucket holds the values below its bound
// (OpenCensus's rule), where a Prometheus histogram holds those up to it.
// A body of exactly 1024 bytes is counted above le="1024", as daprd
// exports it, not at it.
//
// The sizes are whole numbers, so the vec observes into Prometheus buckets
// half a byte below the nominal bounds (v < b is v <= b-0.5) and, when
// scraped, exports them under the nominal bounds. Observing costs what a
// plain histogram costs; the translation happens only at scrape time.
type byteHistogramVec struct {
	*prometheus.HistogramVec
	desc   *prometheus.Desc
	labels []string
}

// shiftBelow is how far under its nominal bound a bucket's inner bound is.
const shiftBelow = 0.5

func newByteHistogramVec(name, help string, labels []string) *byteHistogramVec {
	inner := make([]float64, len(defaultSizeBuckets))
	for i, b := range defaultSizeBuckets {
		inner[i] = b - shiftBelow
	}
	return &byteHistogramVec{
		HistogramVec: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: inner}, labels),
		desc:         prometheus.NewDesc(name, help, labels, nil),
		labels:       labels,
	}
}

// Describe implements prometheus.Collector.
func (v *byteHistogramVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector: each child with its buckets
// under their nominal bounds.
func (v *byteHistogramVec) Collect(ch chan<- prometheus.Metric) {
	inner := make(chan prometheus.Metric, 8)
	go func() {
		v.HistogramVec.Collect(inner)
		close(inner)
	}()
	for m := range inner {
		ch <- v.nominal(m)
	}
}

// nominal is m with its bucket bounds moved back up to the nominal ones.
func (v *byteHistogramVec) nominal(m prometheus.Metric) prometheus.Metric {
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		return prometheus.NewInvalidMetric(v.desc, err)
	}
	h := pb.GetHistogram()
	buckets := make(map[float64]uint64, len(h.GetBucket()))
	for _, b := range h.GetBucket() {
		buckets[b.GetUpperBound()+shiftBelow] = b.GetCumulativeCount()
	}
	byName := make(map[string]string, len(pb.GetLabel()))
	for _, l := range pb.GetLabel() {
		byName[l.GetName()] = l.GetValue()
	}
	values := make([]string, len(v.labels))
	for i, name := range v.labels {
		values[i] = byName[name]
	}
	out, err := prometheus.NewConstHistogram(v.desc, h.GetSampleCount(), h.GetSampleSum(), buckets, values...)
	if err != nil {
		return prometheus.NewInvalidMetric(v.desc, err)
	}
	return out
}
