package webhook

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	delivered prometheus.Counter
	failed    prometheus.Counter
	retried   prometheus.Counter
	dead      prometheus.Counter
	latency   prometheus.Histogram
	pending   prometheus.Gauge
	deadNow   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartsync_webhook_delivered_total", Help: "Events delivered to the webhook endpoint.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartsync_webhook_attempts_failed_total", Help: "Delivery attempts that failed (not 2xx, timeout, connection error).",
		}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartsync_webhook_retried_total", Help: "Events delivered after at least one failed attempt.",
		}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cartsync_webhook_dead_total", Help: "Events given up after the retry window.",
		}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cartsync_webhook_delivery_seconds", Help: "Time from an event to its delivery.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600},
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartsync_webhook_pending", Help: "Events waiting for delivery, as last counted.",
		}),
		deadNow: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cartsync_webhook_dead", Help: "Dead events in the outbox, as last counted.",
		}),
	}
	for _, c := range []prometheus.Collector{m.delivered, m.failed, m.retried, m.dead, m.latency, m.pending, m.deadNow} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
