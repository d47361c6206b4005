package main

import (
	"testing"
	"time"
)

func TestCommitQuantile(t *testing.T) {
	before := map[string]float64{
		`cartsync_commit_seconds_bucket{le="0.001"}`: 5,
		`cartsync_commit_seconds_bucket{le="0.002"}`: 5,
		`cartsync_commit_seconds_bucket{le="+Inf"}`:  5,
		metricBatches: 3,
	}
	after := map[string]float64{
		`cartsync_commit_seconds_bucket{le="0.001"}`: 55,  // 50 new samples up to 1 ms
		`cartsync_commit_seconds_bucket{le="0.002"}`: 104, // 49 more up to 2 ms
		`cartsync_commit_seconds_bucket{le="+Inf"}`:  105, // 1 more above
		metricBatches: 9,
	}
	d := histogramDelta(before, after)
	if _, ok := d[metricBatches]; ok || len(d) != 3 {
		t.Fatalf("delta = %v, want the 3 buckets only", d)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, time.Millisecond}, {0.9, 2 * time.Millisecond}, {0.99, 2 * time.Millisecond}, {1, 1<<63 - 1}} {
		if got, ok := commitQuantile(d, metricCommit, c.q); !ok || got != c.want {
			t.Errorf("quantile %v = %v, %v; want %v", c.q, got, ok, c.want)
		}
	}
	if _, ok := commitQuantile(d, metricWait, 0.5); ok {
		t.Error("a quantile of a histogram with no buckets")
	}
}
