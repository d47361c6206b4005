// Command cartsync-bench is the load generator behind `make bench`. It opens
// many websocket clients, each a real syncclient.Engine, against a running
// sync server, some carts shared by two devices, and reports acknowledged
// operations per second, ack latency, and device-to-device propagation
// latency. The first device of each cart edits in a closed loop (edit, wait
// for the ack, edit); the second device of a shared cart watches for each
// edit to arrive.
//
// With -scenario restart it measures a graceful restart instead: it starts
// the server binary (-server-bin, -server-args) itself, and reports how
// long the clients take to come back and acknowledge an edit after SIGTERM
// (see restart.go).
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver/postgres"
	"github.com/cartsync/cartsync/syncserver/sqlite"
)

type config struct {
	server   string
	clients  int
	carts    int
	duration time.Duration
	warmup   time.Duration
	think    time.Duration
	rate     float64
	pgURL    string
	pgConns  string
	liteDir  string

	scenario   string
	serverBin  string
	serverArgs string
	editors    int
	timeout    time.Duration
	serverProf string
	sources    int
	shoppers   int
	instances  int
	perProcess int
	targets    string
	holdOffset int

	apiKey, hookSecret, hookListen string
	catalogItems, writers          int
}

func main() {
	c, cpuProfile := parseFlags()
	stop := func() {}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		stop = func() { pprof.StopCPUProfile(); f.Close() }
	}
	err := runScenario(context.Background(), c)
	stop()
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// usageError is a bad combination of flags: the program exits with 2.
type usageError string

func (e usageError) Error() string { return string(e) }

func parseFlags() (config, string) {
	var c config
	flag.StringVar(&c.server, "server", "http://127.0.0.1:8080", "sync server base URL")
	flag.IntVar(&c.clients, "clients", 1000, "websocket clients (devices)")
	flag.IntVar(&c.carts, "carts", 600, "carts; clients beyond this many are second devices of a cart")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "measured time")
	flag.DurationVar(&c.warmup, "warmup", 5*time.Second, "time before measuring")
	flag.DurationVar(&c.think, "think", 0, "pause between a client's edits")
	flag.Float64Var(&c.rate, "rate", 0, "open loop: edits per second over all editing clients, each on a fixed schedule whether or not the last was acknowledged yet; latency counts from the scheduled time, so waiting behind a slow edit counts too (0: closed loop)")
	flag.StringVar(&c.pgURL, "postgres-url", "", "if set, also measure single-row durable inserts/s into this Postgres (the storage's own limit)")
	flag.StringVar(&c.pgConns, "postgres-conns", "16", "connections for the Postgres baseline, comma-separated: the server's pool size, and more to compare at higher concurrency")
	flag.StringVar(&c.liteDir, "sqlite-baseline", "", "if set, also measure single-row durable inserts/s into a scratch SQLite file in this folder (when the server runs on its embedded SQLite store)")
	flag.StringVar(&c.scenario, "scenario", "load", "load: edits in a closed loop; restart: restart the server under -clients connections and time their return; idle: the server's memory and goroutines per idle connection; peer: -shoppers each loop add, set quantity 3, remove, over the websocket and then over HTTP; scale: -instances servers on one Postgres and Redis, -clients idle connections across them, the peer workload and edits crossing instances on top; commerce: catalog uploads and webhook delivery")
	flag.StringVar(&c.serverBin, "server-bin", "", "restart: the cartsync binary to start, restart and stop, on the address of -server")
	flag.StringVar(&c.serverArgs, "server-args", "", "restart: the server's arguments besides -addr, separated by spaces")
	flag.IntVar(&c.editors, "editors", -1, "restart: clients that edit while disconnected; -1 means all")
	flag.DurationVar(&c.timeout, "timeout", time.Minute, "restart: how long the clients may take to come back")
	flag.StringVar(&c.serverProf, "server-cpuprofile", "", "restart: write the new server's CPU profile over the clients' return (5 s from its start) to this file; the server gets -debug-addr on a free loopback port")
	flag.StringVar(&c.apiKey, "api-key", "", "commerce: the server's API key")
	flag.StringVar(&c.hookSecret, "webhook-secret", "", "commerce: the server's webhook secret")
	flag.StringVar(&c.hookListen, "webhook-listen", "127.0.0.1:0", "commerce: where this program receives the server's webhooks (the server's -webhook-url)")
	flag.IntVar(&c.catalogItems, "catalog-items", 50000, "commerce: catalog items to upload")
	flag.IntVar(&c.writers, "writers", 64, "commerce: devices editing at once")
	flag.IntVar(&c.shoppers, "shoppers", 64, "peer: shoppers, each with a cart of its own")
	flag.IntVar(&c.instances, "instances", 2, "scale: server instances to start, on consecutive ports from -server's")
	flag.IntVar(&c.perProcess, "hold-per-process", 15000, "scale: idle connections per holding child process (each process is bound by its open-files limit)")
	flag.StringVar(&c.targets, "targets", "", "hold (a child of scale): comma-separated host:port of the instances")
	flag.IntVar(&c.holdOffset, "hold-offset", 0, "hold (a child of scale): number of the first connection")
	flag.IntVar(&c.sources, "source-addrs", 4, "idle: loopback source addresses the connections come from (127.0.0.1 up)")
	cpuProfile := flag.String("cpuprofile", "", "write the load generator's CPU profile to this file")
	flag.Parse()
	return c, *cpuProfile
}

// runScenario runs the scenario c names.
func runScenario(ctx context.Context, c config) error {
	switch c.scenario {
	case "hold":
		return runHold(ctx, strings.Split(c.targets, ","), c.clients, c.holdOffset, max(c.sources, 1))
	case "peer":
		return runPeer(ctx, peerConfig{servers: []string{c.server}, shoppers: c.shoppers, duration: c.duration, warmup: c.warmup})
	case "commerce":
		return runCommerce(ctx, commerceConfig{server: c.server, apiKey: c.apiKey, secret: c.hookSecret,
			listen: c.hookListen, items: c.catalogItems, writers: c.writers, window: c.duration})
	case "scale":
		u, err := url.Parse(c.server)
		if err != nil || c.serverBin == "" || c.instances < 1 || c.perProcess < 1 {
			return usageError("scale needs -server-bin, an http:// -server, -instances and -hold-per-process of at least 1")
		}
		return runScale(ctx, scaleConfig{
			restartConfig: restartConfig{bin: c.serverBin, args: strings.Fields(c.serverArgs), addr: u.Host, logDir: os.TempDir(), clients: c.clients},
			instances:     c.instances, perProcess: c.perProcess, sources: max(c.sources, 1),
			peer: peerConfig{shoppers: c.shoppers, duration: c.duration, warmup: c.warmup},
		})
	case "idle":
		u, err := url.Parse(c.server)
		if err != nil || c.serverBin == "" {
			return usageError("idle needs -server-bin and an http:// -server")
		}
		return runIdle(ctx, idleConfig{restartConfig: restartConfig{
			bin: c.serverBin, args: strings.Fields(c.serverArgs), addr: u.Host, logDir: os.TempDir(), clients: c.clients,
		}, sources: max(c.sources, 1)})
	case "restart":
		u, err := url.Parse(c.server)
		if err != nil || c.serverBin == "" {
			return usageError("restart needs -server-bin and an http:// -server")
		}
		if c.editors < 0 || c.editors > c.clients {
			c.editors = c.clients
		}
		return runRestart(ctx, restartConfig{
			bin: c.serverBin, args: strings.Fields(c.serverArgs), addr: u.Host, logDir: os.TempDir(),
			clients: c.clients, editors: c.editors, timeout: c.timeout, profile: c.serverProf,
		})
	}
	return runLoad(ctx, c)
}

// runLoad runs the load scenario and the storage baselines asked for.
func runLoad(ctx context.Context, c config) error {
	if c.carts > c.clients || c.carts < 1 || c.clients > 2*c.carts {
		return usageError("need carts <= clients <= 2*carts")
	}
	conns := []int{}
	if c.pgURL != "" {
		for _, f := range strings.Split(c.pgConns, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				return usageError(fmt.Sprintf("bench: -postgres-conns: bad count %q", f))
			}
			conns = append(conns, n)
		}
	}
	r, err := run(ctx, c)
	if err != nil {
		return err
	}
	r.print(c)
	ops := float64(len(r.acks)) / r.window.Seconds()
	for _, n := range conns {
		base, err := postgres.Baseline(ctx, c.pgURL, n, c.duration/2)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		fmt.Printf("postgres baseline: %.0f single-row durable inserts/s from %d connections; acknowledged ops/s as a share of it: %.2f\n", base, n, ops/base)
	}
	if c.liteDir != "" {
		base, err := sqlite.Baseline(ctx, c.liteDir, c.duration/2)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		fmt.Printf("sqlite baseline: %.0f single-row durable inserts/s (one writer); acknowledged ops/s as a share of it: %.2f\n", base, ops/base)
	}
	return nil
}

// recorder collects latencies during the measured window.
type recorder struct {
	mu      sync.Mutex
	on      atomic.Bool
	acks    []time.Duration
	props   []time.Duration
	sent    sync.Map // nonce -> time.Time
	errors  atomic.Int64
	started time.Time
	stopped time.Time
}

func (r *recorder) ack(d time.Duration) {
	if r.on.Load() {
		r.mu.Lock()
		r.acks = append(r.acks, d)
		r.mu.Unlock()
	}
}

func (r *recorder) prop(d time.Duration) {
	if r.on.Load() {
		r.mu.Lock()
		r.props = append(r.props, d)
		r.mu.Unlock()
	}
}

type result struct {
	acks, props []time.Duration
	window      time.Duration
	errors      int64
	// The server's group commit over the window: transactions, and the
	// Mutates they committed.
	batches, batched float64
	// Of those transactions (Postgres): committed in one round trip from
	// the carts in memory, and decided there on stale carts.
	memo, stale float64
	serverCPU   float64 // seconds
	// The server's commit histograms over the window: the increase of
	// each bucket (by its full series name, see commitQuantile).
	histograms map[string]float64
}

// The server's group-commit counters and histograms (see
// syncserver.RegisterGroupCommit).
const (
	metricBatches = "cartsync_commit_batches_total"
	metricBatched = "cartsync_commit_batched_total"
	metricMemo    = "cartsync_commit_memo_total"
	metricStale   = "cartsync_commit_stale_total"
	metricCPU     = "process_cpu_seconds_total"
	metricWait    = "cartsync_commit_wait_seconds"
	metricCommit  = "cartsync_commit_seconds"
)

// serverCounters reads the server's group-commit counters, the buckets of
// its commit histograms, and its CPU time from /metrics; none if it cannot.
func serverCounters(ctx context.Context, server string) map[string]float64 {
	counters := []string{metricBatches, metricBatched, metricMemo, metricStale, metricCPU}
	return readSeries(ctx, server, func(series string) bool {
		return slices.Contains(counters, series) ||
			strings.HasPrefix(series, metricWait+"_bucket{") || strings.HasPrefix(series, metricCommit+"_bucket{")
	})
}

// histogramDelta returns the increase of each histogram bucket from before
// to after.
func histogramDelta(before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range after {
		if strings.Contains(k, "_bucket{") {
			out[k] = v - before[k]
		}
	}
	return out
}

// commitQuantile returns the upper bound of the bucket of histogram name
// (metricWait or metricCommit) that holds quantile q of the samples in
// buckets (cumulative, as Prometheus keeps them), and false without samples.
func commitQuantile(buckets map[string]float64, name string, q float64) (time.Duration, bool) {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := name + `_bucket{le="`
	for k, n := range buckets {
		le, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le = strings.TrimSuffix(le, `"}`)
		v, err := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		if err == nil {
			bs = append(bs, bucket{v, n})
		}
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return 0, false
	}
	total := bs[len(bs)-1].n
	for _, b := range bs {
		if b.n >= q*total {
			if math.IsInf(b.le, 1) {
				return time.Duration(math.MaxInt64), true
			}
			return time.Duration(b.le * float64(time.Second)), true
		}
	}
	return 0, false
}

// readMetrics reads unlabelled values from the server's /metrics: those
// of names it finds.
func readMetrics(ctx context.Context, server string, names ...string) map[string]float64 {
	return readSeries(ctx, server, func(series string) bool { return slices.Contains(names, series) })
}

// readSeries reads the values of the series (a name with its labels, as
// /metrics writes it) that want takes.
func readSeries(ctx context.Context, server string, want func(series string) bool) map[string]float64 {
	out := map[string]float64{}
	req, _ := http.NewRequestWithContext(ctx, "GET", server+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return out
	}
	for line := range strings.Lines(string(body)) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || !want(name) {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out
}

func run(ctx context.Context, c config) (*result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wsURL := "ws" + strings.TrimPrefix(c.server, "http") + "/v1/sync"
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	rec := &recorder{}

	tokens := make([]string, c.carts)
	for i := range tokens {
		tok, err := newDevice(ctx, c.server)
		if err != nil {
			return nil, err
		}
		tokens[i] = tok
	}
	engines := make([]*syncclient.Engine, c.clients)
	var wg sync.WaitGroup
	for i := range c.clients {
		st := syncclient.NewMemStorage()
		if _, err := st.SwapDeviceToken(ctx, "", tokens[i%c.carts]); err != nil {
			return nil, err
		}
		me := fmt.Sprintf("w%d-", i)
		seen := map[string]bool{}
		e, err := syncclient.New(syncclient.Config{
			Storage: st,
			Dial:    syncclient.WebsocketDialer(wsURL),
			Logger:  logger,
			OnChange: func(s syncclient.State) {
				// A nonce from the other device of the cart has arrived.
				for _, l := range s.Cart.Lines {
					n := l.Details.Name
					if n == "" || strings.HasPrefix(n, me) || seen[n] {
						continue
					}
					seen[n] = true
					if t, ok := rec.sent.Load(n); ok {
						rec.prop(time.Since(t.(time.Time)))
					}
				}
			},
		})
		if err != nil {
			return nil, err
		}
		engines[i] = e
		wg.Add(1)
		go func() { defer wg.Done(); e.Run(ctx) }()
		if i%100 == 99 {
			time.Sleep(50 * time.Millisecond) // don't open every socket at once
		}
	}

	stop := make(chan struct{})
	var loops sync.WaitGroup
	// The first device of each cart edits; a second device watches, so
	// that every edit's arrival there can be timed.
	for i, e := range engines[:c.carts] {
		loops.Add(1)
		go func() {
			defer loops.Done()
			var interval time.Duration
			if c.rate > 0 {
				interval = time.Duration(float64(c.carts) / c.rate * float64(time.Second))
			}
			edit(ctx, i, e, rec, c.think, interval, stop)
		}()
	}
	time.Sleep(c.warmup)
	before := serverCounters(ctx, c.server)
	rec.started = time.Now()
	rec.on.Store(true)
	time.Sleep(c.duration)
	rec.on.Store(false)
	rec.stopped = time.Now()
	after := serverCounters(ctx, c.server)
	close(stop)
	loops.Wait()
	cancel()
	wg.Wait()
	return &result{acks: rec.acks, props: rec.props, window: rec.stopped.Sub(rec.started), errors: rec.errors.Load(),
		batches: after[metricBatches] - before[metricBatches], batched: after[metricBatched] - before[metricBatched],
		memo: after[metricMemo] - before[metricMemo], stale: after[metricStale] - before[metricStale],
		serverCPU: after[metricCPU] - before[metricCPU], histograms: histogramDelta(before, after)}, nil
}

// edit is one client's closed loop: an add whose details carry a nonce the
// other device of the cart watches for, then wait for its ack.
//
// With an interval it runs open loop instead: edit n is due at a random
// phase plus n intervals, and its latency counts from then.
func edit(ctx context.Context, i int, e *syncclient.Engine, rec *recorder, think, interval time.Duration, stop chan struct{}) {
	first := time.Now()
	if interval > 0 {
		first = first.Add(time.Duration(rand.Int64N(int64(interval))))
	}
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		nonce := fmt.Sprintf("w%d-%d", i, n)
		sku := fmt.Sprintf("SKU-%d", n%5)
		start := time.Now()
		if interval > 0 {
			start = first.Add(time.Duration(n) * interval)
			select {
			case <-stop:
				return
			case <-time.After(time.Until(start)):
			}
		}
		rec.sent.Store(nonce, start)
		if err := e.Add(ctx, sku, nil, 1, &cart.Details{Name: nonce, Price: 1299, Currency: "EUR"}); err != nil {
			rec.errors.Add(1)
			return
		}
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := e.Flush(fctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				rec.errors.Add(1)
			}
			return
		}
		rec.ack(time.Since(start))
		if think > 0 {
			time.Sleep(think)
		}
	}
}

func newDevice(ctx context.Context, server string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "POST", server+"/v1/devices", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var d struct {
		DeviceToken string `json:"device_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || d.DeviceToken == "" {
		return "", errors.Join(errors.New("POST /v1/devices gave no token"), err)
	}
	return d.DeviceToken, nil
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// printCommitTimes prints where the server's commits spent their time, from
// its histograms: a Mutate's wait for a transaction and a transaction's
// own time, as the upper bounds of the buckets that hold p50 and p99.
func printCommitTimes(buckets map[string]float64) {
	bound := func(name string, q float64) string {
		d, ok := commitQuantile(buckets, name, q)
		switch {
		case !ok:
			return "-"
		case d == time.Duration(math.MaxInt64):
			return "over the last bucket"
		}
		return "≤" + strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', -1, 64) + " ms"
	}
	if _, ok := commitQuantile(buckets, metricCommit, 0.5); !ok {
		return
	}
	fmt.Printf("group commit, server side: an edit's wait for a transaction p50 %s, p99 %s; a transaction p50 %s, p99 %s\n",
		bound(metricWait, 0.5), bound(metricWait, 0.99), bound(metricCommit, 0.5), bound(metricCommit, 0.99))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func (r *result) print(c config) {
	shared := c.clients - c.carts
	fmt.Printf("clients %d, carts %d (%d shared by two devices: one edits, one watches), measured %s after %s warm-up\n",
		c.clients, c.carts, shared, c.duration, c.warmup)
	if c.rate > 0 {
		fmt.Printf("open loop: %.0f edits/s scheduled over the %d editing clients\n", c.rate, c.carts)
	}
	fmt.Printf("acknowledged ops/s: %.0f\n", float64(len(r.acks))/r.window.Seconds())
	fmt.Printf("ack latency: p50 %s, p95 %s, p99 %s (%d ops)\n", ms(pct(r.acks, 0.50)), ms(pct(r.acks, 0.95)), ms(pct(r.acks, 0.99)), len(r.acks))
	fmt.Printf("device-to-device propagation: p50 %s, p95 %s, p99 %s (%d samples)\n", ms(pct(r.props, 0.50)), ms(pct(r.props, 0.95)), ms(pct(r.props, 0.99)), len(r.props))
	if r.serverCPU > 0 && len(r.acks) > 0 {
		fmt.Printf("server CPU: %.2f cores, %.3f ms per acknowledged op\n", r.serverCPU/r.window.Seconds(), 1000*r.serverCPU/float64(len(r.acks)))
	}
	if r.batches > 0 {
		fmt.Printf("group commit: %.0f transactions/s, %.1f Mutates per transaction", r.batches/r.window.Seconds(), r.batched/r.batches)
		if r.memo+r.stale > 0 {
			fmt.Printf(", %.0f%% in one round trip (%.0f decided on stale carts)", 100*r.memo/r.batches, r.stale)
		}
		fmt.Println()
		printCommitTimes(r.histograms)
	}
	if r.errors > 0 {
		fmt.Printf("client errors: %d\n", r.errors)
	}
}
