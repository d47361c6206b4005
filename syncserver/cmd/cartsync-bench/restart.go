package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// The restart scenario: the bench starts the server itself, connects
// -clients engines (one cart each) and has each edit once, so that every
// one is connected and acking; then it restarts the server gracefully
// (SIGTERM, wait for it to exit, start it again on the same address) and
// measures how long until every client is back (its hello answered) and
// until the edit each makes while disconnected is acknowledged. It counts
// what the clients were told (going_away, overloaded, internal errors),
// their failed dials, and the server's warnings and errors (cache timeouts
// among them).

type restartConfig struct {
	bin     string   // the server binary
	args    []string // its arguments, -addr excluded
	addr    string   // host:port
	logDir  string   // where the server's stderr goes
	clients int
	editors int           // clients that edit while disconnected
	timeout time.Duration // how long the clients may take to come back
	profile string        // if set, where the new server's CPU profile goes
}

// client is one engine of the restart scenario and what happened to it.
type client struct {
	e       *syncclient.Engine
	editor  bool
	watch   atomic.Bool   // the restart began: watch for the disconnect
	offline chan struct{} // closed when it went offline after the restart began
	once    sync.Once
	mu      sync.Mutex
	backAt  time.Time // hello answered again
	ackedAt time.Time // the offline edit acknowledged
	failed  error
}

func (c *client) onChange(s syncclient.State) {
	if !c.watch.Load() {
		return
	}
	if s.Status == syncclient.Offline {
		c.once.Do(func() { close(c.offline) })
		return
	}
	select {
	case <-c.offline:
	default:
		return
	}
	if s.Status == syncclient.Syncing || s.Status == syncclient.Synced {
		c.mu.Lock()
		if c.backAt.IsZero() {
			c.backAt = time.Now()
		}
		c.mu.Unlock()
	}
}

// logCounter counts the engines' log records: why connections ended and
// what the server said.
type logCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (l *logCounter) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelInfo }
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler            { return l }
func (l *logCounter) WithGroup(string) slog.Handler                 { return l }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	key := ""
	switch r.Message {
	case "sync connection ended":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "err" {
				key = "connection ended: " + classify(a.Value.String())
			}
			return true
		})
	case "error from the server":
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "code" {
				key = "server said: " + a.Value.String()
			}
			return true
		})
	default:
		return nil
	}
	l.mu.Lock()
	l.counts[key]++
	l.mu.Unlock()
	return nil
}

// print prints the counts under a title, by key.
func (l *logCounter) print(title string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Println(title)
	for _, k := range slices.Sorted(maps.Keys(l.counts)) {
		fmt.Printf("  %s: %d\n", k, l.counts[k])
	}
}

func classify(err string) string {
	switch {
	case strings.Contains(err, "dial"):
		return "dial failed"
	case strings.Contains(err, "going_away"):
		return "going_away"
	case strings.Contains(err, "overloaded"):
		return "overloaded"
	case strings.Contains(err, "did not answer"):
		return "request timed out"
	case strings.Contains(err, "nothing heard"):
		return "silent server"
	}
	if len(err) > 60 {
		err = err[:60]
	}
	return "other (" + err + ")"
}

func runRestart(ctx context.Context, rc restartConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if ln, err := net.Listen("tcp", rc.addr); err != nil {
		return fmt.Errorf("address %s is taken: %w", rc.addr, err)
	} else {
		ln.Close()
	}
	srv, _, err := startServer(ctx, rc, 1)
	if srv != nil {
		defer srv.kill()
	}
	if err != nil {
		return err
	}
	r := &restartRun{rc: rc, logs: &logCounter{counts: map[string]int{}}}
	defer r.wg.Wait()
	defer cancel()
	if err := r.connect(ctx); err != nil {
		return err
	}
	if err := r.warmUp(ctx); err != nil {
		return err
	}
	edits := r.editWhenOffline(ctx)

	t0 := time.Now()
	if err := srv.stop(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("stop the server: %w", err)
		}
		fmt.Printf("first server exited with %v\n", err)
	}
	exited := time.Now()
	if rc.profile != "" {
		// The new server serves its profiler on a port of its choosing
		// and names it in its log; the profile is taken from its start,
		// over the clients' return.
		rc.args = append(slices.Clip(rc.args), "-debug-addr", "127.0.0.1:0")
		profiled := make(chan error, 1)
		defer func() {
			if err := <-profiled; err != nil {
				fmt.Printf("server profile: %v\n", err)
			} else {
				fmt.Printf("server profile: %s\n", rc.profile)
			}
		}()
		go func() { profiled <- fetchProfile(ctx, fmt.Sprintf("%s/server-%d.log", rc.logDir, 2), rc.profile) }()
	}
	srv2, ready, err := startServer(ctx, rc, 2)
	if srv2 != nil {
		defer func() {
			if srv2.cmd.ProcessState == nil {
				srv2.stop()
			}
		}()
	}
	if err != nil {
		return err
	}

	atReady := sampleCPU(srv2.cmd.Process.Pid)
	r.waitBack(t0.Add(rc.timeout))
	atDone := sampleCPU(srv2.cmd.Process.Pid)
	o := r.tally(t0)
	cancel()
	edits.Wait()

	sec := func(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }
	fmt.Printf("restart: SIGTERM at 0; old server exited at %s; new server ready at %s\n", sec(exited.Sub(t0)), sec(ready.Sub(t0)))
	fmt.Printf("clients back (hello answered), from SIGTERM: p50 %s, p99 %s, last %s; %d of %d back, %d not back within %s\n",
		sec(pct(o.back, 0.5)), sec(pct(o.back, 0.99)), sec(pct(o.back, 1)), len(o.back), rc.clients, o.notBack, rc.timeout)
	fmt.Printf("edits made while disconnected acknowledged, from SIGTERM: p50 %s, p99 %s, last %s; %d of %d acknowledged, %d failed, %d unanswered\n",
		sec(pct(o.acked, 0.5)), sec(pct(o.acked, 0.99)), sec(pct(o.acked, 1)), len(o.acked), rc.editors, o.failed, o.notAcked)
	fmt.Printf("all back and acking %s after the new server was ready\n", sec(max(pct(o.back, 1), pct(o.acked, 1))-ready.Sub(t0)))
	if w := atDone.wall.Sub(atReady.wall).Seconds(); w > 0 {
		fmt.Printf("machine while they came back (%.2f s): %.2f of %d cores busy; the new server %.2f cores, this load generator %.2f, the rest (Postgres, Redis, other) %.2f\n",
			w, (atDone.busy-atReady.busy)/w, atDone.cores, (atDone.server-atReady.server)/w, (atDone.self-atReady.self)/w,
			((atDone.busy-atReady.busy)-(atDone.server-atReady.server)-(atDone.self-atReady.self))/w)
	}
	r.logs.print("client events during the restart:")
	srv2.stop()
	var self syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	cpu := func(p *os.ProcessState) string { return sec(p.UserTime() + p.SystemTime()) }
	fmt.Printf("CPU time: old server %s, new server %s, this load generator %s (whole run)\n",
		cpu(srv.cmd.ProcessState), cpu(srv2.cmd.ProcessState), sec(time.Duration(self.Utime.Nano()+self.Stime.Nano())))
	for _, s := range []*server{srv, srv2} {
		if err := s.printLogSummary(); err != nil {
			return err
		}
	}
	if o.notBack > 0 || o.failed > 0 || o.notAcked > 0 {
		return fmt.Errorf("%d clients not back, %d edits failed, %d unanswered", o.notBack, o.failed, o.notAcked)
	}
	return nil
}

// restartRun is the clients of one restart scenario.
type restartRun struct {
	rc      restartConfig
	logs    *logCounter
	clients []*client
	wg      sync.WaitGroup // the engines' Run
}

// connect starts one engine per client and waits until every one is
// synced.
func (r *restartRun) connect(ctx context.Context) error {
	logger := slog.New(r.logs)
	wsURL := (&url.URL{Scheme: "ws", Host: r.rc.addr, Path: "/v1/sync"}).String()
	r.clients = make([]*client, r.rc.clients)
	setup := time.Now()
	for i := range r.clients {
		c := &client{editor: i < r.rc.editors, offline: make(chan struct{})}
		e, err := syncclient.New(syncclient.Config{
			Storage:  syncclient.NewMemStorage(),
			Dial:     syncclient.WebsocketDialer(wsURL),
			Logger:   logger,
			OnChange: c.onChange,
		})
		if err != nil {
			return err
		}
		c.e = e
		r.clients[i] = c
		r.wg.Add(1)
		go func() { defer r.wg.Done(); e.Run(ctx) }()
		if i%200 == 199 {
			time.Sleep(50 * time.Millisecond) // don't open every socket at once
		}
	}
	for tick := 0; ; tick++ {
		synced := 0
		for _, c := range r.clients {
			if c.e.Snapshot().Status == syncclient.Synced {
				synced++
			}
		}
		if synced == len(r.clients) {
			return nil
		}
		if tick%10 == 9 {
			r.logs.mu.Lock()
			fmt.Printf("setup: %d of %d connected after %s; %v\n", synced, len(r.clients), time.Since(setup).Round(time.Second), r.logs.counts)
			r.logs.mu.Unlock()
		}
		if time.Since(setup) > 3*time.Minute {
			return fmt.Errorf("%d of %d clients connected within 3 minutes", synced, len(r.clients))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// warmUp has every editor edit once and waits for the acks, then lets
// every connection be healthy for a while and forgets what was logged.
func (r *restartRun) warmUp(ctx context.Context) error {
	setup := time.Now()
	var warm sync.WaitGroup
	var warmErrs atomic.Int64
	for i, c := range r.clients {
		if !c.editor {
			continue
		}
		warm.Add(1)
		go func() {
			defer warm.Done()
			wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			err := c.e.Add(wctx, fmt.Sprintf("SKU-%d", i%7), nil, 1, &cart.Details{Name: "warm-up", Price: 1299, Currency: "EUR"})
			if err == nil {
				err = c.e.Flush(wctx)
			}
			if err != nil {
				warmErrs.Add(1)
			}
		}()
	}
	warm.Wait()
	if n := warmErrs.Load(); n > 0 {
		return fmt.Errorf("%d of %d clients were not acknowledged before the restart", n, r.rc.clients)
	}
	fmt.Printf("setup: %d clients connected, %d of them edited and acknowledged, in %s\n", r.rc.clients, r.rc.editors, time.Since(setup).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // every connection healthy for a while
	r.logs.mu.Lock()
	clear(r.logs.counts)
	r.logs.mu.Unlock()
	return nil
}

// editWhenOffline has each editor edit as soon as it is disconnected and
// wait for the ack; the clients start watching for the disconnect.
func (r *restartRun) editWhenOffline(ctx context.Context) *sync.WaitGroup {
	edits := &sync.WaitGroup{}
	for i, c := range r.clients {
		c.watch.Store(true)
		if !c.editor {
			continue
		}
		edits.Add(1)
		go func() {
			defer edits.Done()
			select {
			case <-c.offline:
			case <-ctx.Done():
				return
			}
			ectx, cancel := context.WithTimeout(ctx, r.rc.timeout)
			defer cancel()
			err := c.e.Add(ectx, fmt.Sprintf("SKU-%d", i%7), nil, 1, nil)
			if err == nil {
				err = c.e.Flush(ectx)
			}
			c.mu.Lock()
			if err != nil {
				c.failed = err
			} else {
				c.ackedAt = time.Now()
			}
			c.mu.Unlock()
		}()
	}
	return edits
}

// waitBack waits until every client is back and every edit answered, or
// the deadline.
func (r *restartRun) waitBack(deadline time.Time) {
	for time.Now().Before(deadline) {
		done := 0
		for _, c := range r.clients {
			c.mu.Lock()
			if !c.backAt.IsZero() && (!c.editor || !c.ackedAt.IsZero() || c.failed != nil) {
				done++
			}
			c.mu.Unlock()
		}
		if done == len(r.clients) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restartOutcome is when the clients came back and their edits were
// acknowledged, counted from the SIGTERM, and who did not.
type restartOutcome struct {
	back, acked               []time.Duration
	notBack, notAcked, failed int
}

func (r *restartRun) tally(t0 time.Time) restartOutcome {
	var o restartOutcome
	for _, c := range r.clients {
		c.mu.Lock()
		if c.backAt.IsZero() {
			o.notBack++
		} else {
			o.back = append(o.back, c.backAt.Sub(t0))
		}
		if c.editor {
			switch {
			case c.failed != nil:
				o.failed++
			case c.ackedAt.IsZero():
				o.notAcked++
			default:
				o.acked = append(o.acked, c.ackedAt.Sub(t0))
			}
		}
		c.mu.Unlock()
	}
	return o
}
