// Command cartsync runs the cartsync sync server.
//
// With no configuration it runs on the embedded default: a SQLite file under
// the data folder and in-process fan-out. Given a Postgres URL it keeps carts
// there; given a Redis URL it caches carts there and fans out between
// instances through it, so several instances behave as one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/auth"
	"github.com/cartsync/cartsync/syncserver/gcfloor"
	"github.com/cartsync/cartsync/syncserver/webhook"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	m := NewMain()
	if err := m.ParseFlags(os.Args[1:], os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if m.HeapFloorMiB > 0 || m.IdleRelease {
		defer gcfloor.Start(uint64(m.HeapFloorMiB)<<20, m.IdleRelease).Stop()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		m.Logger.Error("start", logkey.Err, err)
		os.Exit(1)
	}
	<-ctx.Done()
	stop() // a second signal ends the process at once
	if m.DrainDelay > 0 {
		m.Logger.Info("draining", logkey.Timeout, m.DrainDelay.String())
		m.Drain()
		time.Sleep(m.DrainDelay)
	}
	m.Logger.Info("shutting down", logkey.Timeout, m.ShutdownTimeout.String())
	if err := closeWithin(m.Close, m.ShutdownTimeout, shutdownGrace); err != nil {
		m.Logger.Error("shutdown", logkey.Err, err)
		os.Exit(1)
	}
	m.Logger.Info("shut down")
}

// closeWithin calls close with a context that ends after timeout, and
// returns its error. Closing a backend that hangs (a Postgres that stopped
// answering) may not heed the context: past it and grace, closeWithin
// returns without waiting for close. What was acknowledged is in the store
// already; what was not, its client sends again.
func closeWithin(close func(context.Context) error, timeout, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- close(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout + grace):
		return fmt.Errorf("closing took longer than %s; exiting without waiting for it", timeout+grace)
	}
}

// shutdownGrace is how long past ShutdownTimeout the process waits for its
// backends to close before it exits anyway.
const shutdownGrace = 5 * time.Second

// Main is the program: configuration, wiring and lifetime. Tests run the
// real server through it on a free port.
type Main struct {
	Addr           string
	DataDir        string
	PostgresURL    string
	PostgresConns  int
	Committers     int // group commit; -1: the store's default, 0: off
	RedisURL       string
	RedisPrefix    string
	AllowedOrigins []string
	WebDir         string
	DemoAddr       string
	DebugAddr      string
	// MetricsAddr, if set, serves /metrics there instead of on Addr.
	MetricsAddr string
	// HeapFloorMiB is the Go heap's floor (gcfloor), set by main for the
	// whole process; 0 for none.
	HeapFloorMiB int
	// IdleRelease gives memory back to the system when the server is
	// idle (gcfloor), set by main for the whole process.
	IdleRelease bool
	// OriginAgentCluster asks browsers for a process of the widget's own
	// (webui.Config.OriginAgentCluster).
	OriginAgentCluster bool
	Auth               auth.Config
	DefaultPolicy      string
	GuestRetention     time.Duration
	UserRetention      time.Duration
	PurgeInterval      time.Duration
	CacheTTL           time.Duration
	ShutdownTimeout    time.Duration
	ShutdownSpread     time.Duration
	// DrainDelay is how long /readyz answers "draining" after SIGTERM
	// before the listener closes; 0 closes it at once.
	DrainDelay      time.Duration
	MaxHellos       int
	APIKeys         []string
	CatalogOnly     bool
	CheckoutTTL     time.Duration
	AbandonGuest    time.Duration
	AbandonUser     time.Duration
	AbandonInterval time.Duration
	WebhookURL      string
	WebhookSecrets  []string
	WebhookWindow   time.Duration
	EventRetention  time.Duration
	IPLimits        syncserver.IPLimits
	LogLevel        slog.Level
	Logger          *slog.Logger

	store     syncserver.Store
	committed syncserver.GroupCommitStore // the store under the cache, for its counters
	bus       syncserver.Bus
	rdb       *goredis.Client
	sync      *syncserver.Server
	http      *http.Server
	listener  net.Listener
	demo      *http.Server
	demoLn    net.Listener
	debug     *http.Server
	debugLn   net.Listener
	metrics   *http.Server
	metricsLn net.Listener
	verifier  *auth.Verifier
	signer    *auth.Signer
	// demoSecret, in tests, is the demo storefront's signing secret
	// instead of a random one.
	demoSecret []byte
	stop       context.CancelFunc
	bg         sync.WaitGroup
	dataLock   io.Closer // the data folder's, with the embedded store
	hooks      *webhook.Deliverer
	demoAPIKey string
	// demoNoCatalog, in tests, leaves the demo's catalog out: the
	// tests written before it assume no stock limits.
	demoNoCatalog bool
}

// NewMain returns a Main with defaults.
func NewMain() *Main {
	return &Main{
		Addr:            "127.0.0.1:8080",
		DataDir:         "data",
		WebDir:          "web",
		RedisPrefix:     "cartsync:",
		Committers:      -1,
		HeapFloorMiB:    32,
		IdleRelease:     true,
		CacheTTL:        24 * time.Hour,
		ShutdownTimeout: 15 * time.Second,
		ShutdownSpread:  2 * time.Second,
		MaxHellos:       128,
		CheckoutTTL:     time.Hour,
		AbandonGuest:    24 * time.Hour,
		AbandonUser:     24 * time.Hour,
		AbandonInterval: time.Minute,
		WebhookWindow:   24 * time.Hour,
		EventRetention:  7 * 24 * time.Hour,
		DefaultPolicy:   "merge",
		GuestRetention:  30 * 24 * time.Hour,
		PurgeInterval:   time.Hour,
		Logger:          slog.Default(),
	}
}

// HTTP server timeouts. A websocket is past them: the server clears a
// connection's deadlines when the websocket takes it over.
const (
	// readHeaderTimeout bounds receiving a request's headers.
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds receiving a whole request, body included (the
	// sync API also bounds a body by -body-timeout).
	readTimeout = time.Minute
	// idleTimeout closes a keep-alive connection without a request.
	idleTimeout = 2 * time.Minute
)

// newHTTPServer returns a server for h with the timeouts above, so that a
// client sending headers or a body a byte at a time, or holding idle
// connections, cannot keep them open for long.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, IdleTimeout: idleTimeout}
}

// Run opens the stores and starts serving; it returns once listening.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.closeBackends()
		}
	}()
	if err := m.openStore(ctx); err != nil {
		return err
	}
	if err := m.openRedis(ctx); err != nil {
		return err
	}
	if err := m.prepareDemo(); err != nil {
		return err
	}
	users, err := m.userVerifier(ctx)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := syncserver.RegisterGroupCommit(reg, m.committed); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if err := m.openWebhooks(reg); err != nil {
		return err
	}
	if m.sync, err = syncserver.New(ctx, m.syncConfig(users, reg)); err != nil {
		return err
	}
	bgCtx, stop := context.WithCancel(context.Background())
	m.stop = stop
	if m.listener, err = net.Listen("tcp", m.Addr); err != nil {
		return err
	}
	mux := m.routes(reg)
	if err := m.serveDemo(bgCtx); err != nil {
		return err
	}
	if err := m.serveDebug(); err != nil {
		return err
	}
	if err := m.serveMetrics(reg); err != nil {
		return err
	}
	// The purge and the other loops start once every listener is open:
	// a start that fails (a port in use) changes nothing in the store.
	m.startBackground(bgCtx)
	m.http = newHTTPServer(mux)
	go func() {
		if err := m.http.Serve(m.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("serve", logkey.Err, err)
		}
	}()
	m.Logger.Info("listening", logkey.Addr, m.listener.Addr().String(), logkey.Version, version)
	return nil
}

// purgeLoop expires carts past their retention every PurgeInterval.
func (m *Main) purgeLoop(ctx context.Context) {
	t := time.NewTicker(m.PurgeInterval)
	defer t.Stop()
	for {
		if _, err := m.sync.Purge(ctx, 500); err != nil && ctx.Err() == nil {
			m.Logger.Error("purge", logkey.Err, err)
		}
		if _, err := m.sync.PruneEvents(ctx, 1000); err != nil && ctx.Err() == nil {
			m.Logger.Error("prune events", logkey.Err, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// abandonLoop writes cart.abandoned events every AbandonInterval.
func (m *Main) abandonLoop(ctx context.Context) {
	t := time.NewTicker(m.AbandonInterval)
	defer t.Stop()
	for {
		if _, err := m.sync.Abandon(ctx, 500); err != nil && ctx.Err() == nil {
			m.Logger.Error("abandoned carts", logkey.Err, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Drain makes /readyz answer 503 "draining"; the server works on.
func (m *Main) Drain() { m.sync.Drain() }

// URL is the base URL the server listens on.
func (m *Main) URL() string { return "http://" + m.listener.Addr().String() }

// Close drains connections and closes the backends.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.demo != nil {
		errs = append(errs, m.demo.Shutdown(ctx))
	}
	if m.debug != nil {
		m.debug.Close()
	}
	if m.metrics != nil {
		m.metrics.Close()
	}
	if m.http != nil {
		errs = append(errs, m.http.Shutdown(ctx))
	}
	if m.sync != nil {
		errs = append(errs, m.sync.Shutdown(ctx))
	}
	if m.stop != nil {
		m.stop()
		m.bg.Wait()
	}
	m.closeBackends()
	return errors.Join(errs...)
}

func (m *Main) closeBackends() {
	if m.verifier != nil {
		m.verifier.Close()
	}
	if m.demoLn != nil && m.demo == nil {
		m.demoLn.Close()
	}
	if m.debugLn != nil && m.debug == nil {
		m.debugLn.Close()
	}
	if m.metricsLn != nil && m.metrics == nil {
		m.metricsLn.Close()
	}
	if m.bus != nil {
		m.bus.Close()
	}
	if m.store != nil {
		m.store.Close()
	}
	if m.rdb != nil {
		m.rdb.Close()
	}
	if m.dataLock != nil {
		m.dataLock.Close()
		m.dataLock = nil
	}
}
