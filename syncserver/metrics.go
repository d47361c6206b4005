package syncserver

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cartsync/cartsync/shared/protocol"
)

type metrics struct {
	ops            *prometheus.CounterVec
	protocolErrors *prometheus.CounterVec
	connections    prometheus.Gauge
	pushSeconds    prometheus.Histogram
	slowConsumers  prometheus.Counter
	overloaded     prometheus.Counter
	pushesOut      prometheus.Counter
}

// latencyBuckets are the buckets of the server's latency histograms:
// 0.5 ms to about 4 s, doubling.
var latencyBuckets = prometheus.ExponentialBuckets(0.0005, 2, 14)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartsync_ops_total", Help: "Operations processed, by status (applied, duplicate, rejected).",
		}, []string{"status"}),
		protocolErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cartsync_protocol_errors_total", Help: "Protocol errors sent to clients, by code.",
		}, []string{"code"}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartsync_connections", Help: "Open websocket connections.",
		}),
		pushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cartsync_apply_seconds", Help: "Time to apply a batch durably.",
			Buckets: latencyBuckets,
		}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartsync_slow_consumers_total", Help: "Connections dropped because their send queue was full.",
		}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartsync_overloaded_total", Help: "Batches and hellos refused with overloaded.",
		}),
		pushesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartsync_pushes_total", Help: "Cart updates pushed to connections.",
		}),
	}
	for _, c := range []prometheus.Collector{m.ops, m.protocolErrors, m.connections, m.pushSeconds, m.slowConsumers, m.overloaded, m.pushesOut} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every op status from the start, at 0: a rate over a series that
	// appears with its first event reads as no data, not as none.
	for _, s := range []string{protocol.StatusApplied, protocol.StatusDuplicate, protocol.StatusRejected} {
		m.ops.WithLabelValues(s)
	}
	return m, nil
}

// GroupCommitStore is a store that commits Mutates by group commit (see
// GroupCommitter).
type GroupCommitStore interface {
	// GroupCommitStats returns the batches committed so far and the
	// Mutates they held (with group commit off, each Mutate is a batch).
	GroupCommitStats() (batches, mutations uint64)
	// GroupCommitCollectors returns the GroupCommitter's Collectors.
	GroupCommitCollectors() []prometheus.Collector
}

// RegisterGroupCommit registers the group-commit counters of s:
// cartsync_commit_batches_total and cartsync_commit_batched_total (their
// ratio is the mean batch), its histograms (GroupCommitter.Collectors), and
// the counters of a MemoCommitStore.
func RegisterGroupCommit(reg prometheus.Registerer, s GroupCommitStore) error {
	batches := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "cartsync_commit_batches_total", Help: "Group-commit batches: transactions that committed one or more Mutates together (failed ones are not counted).",
	}, func() float64 { b, _ := s.GroupCommitStats(); return float64(b) })
	batched := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "cartsync_commit_batched_total", Help: "Mutates committed by group commit, over all batches.",
	}, func() float64 { _, n := s.GroupCommitStats(); return float64(n) })
	cs := append([]prometheus.Collector{batches, batched}, s.GroupCommitCollectors()...)
	if ms, ok := s.(MemoCommitStore); ok {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cartsync_commit_memo_total", Help: "Batches decided on the carts this instance wrote last (kept in memory) and committed in one round trip.",
		}, func() float64 { n, _ := ms.MemoCommitStats(); return float64(n) }), prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cartsync_commit_stale_total", Help: "Batches decided in memory whose carts had changed since (another instance, the purge, or a batch of this instance committing at once wrote them): decided again on the rows read under lock.",
		}, func() float64 { _, n := ms.MemoCommitStats(); return float64(n) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// MemoCommitStore is a store that can commit a batch decided on the carts
// it wrote last, kept in memory (see CartMemo). RegisterGroupCommit
// registers its counters too: cartsync_commit_memo_total and
// cartsync_commit_stale_total.
type MemoCommitStore interface {
	// MemoCommitStats returns the batches committed from memory so far,
	// and those whose memory was stale (committed on the rows instead).
	MemoCommitStats() (committed, stale uint64)
}
