// Command cartsync runs the cartsync sync server.
//
// With no configuration it runs on the embedded default: a SQLite file under
// the data folder and in-process fan-out. Given a Postgres URL it keeps carts
// there; given a Redis URL it caches carts there and fans out between
// instances through it, so several instances behave as one.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	goredis "github.com/redis/go-redis/v9"

	"cartsync/shared/cart"
	"cartsync/syncserver"
	"cartsync/syncserver/auth"
	"cartsync/syncserver/postgres"
	"cartsync/syncserver/redis"
	"cartsync/syncserver/sqlite"
	"cartsync/syncserver/webhook"
	"cartsync/syncserver/webui"
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		m.Logger.Error("start", "err", err)
		os.Exit(1)
	}
	<-ctx.Done()
	m.Logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), m.ShutdownTimeout)
	defer cancel()
	if err := m.Close(sctx); err != nil {
		m.Logger.Error("shutdown", "err", err)
		os.Exit(1)
	}
}

// Main is the program: configuration, wiring and lifetime. Tests run the
// real server through it on a free port.
type Main struct {
	Addr            string
	DataDir         string
	PostgresURL     string
	PostgresConns   int
	RedisURL        string
	RedisPrefix     string
	AllowedOrigins  []string
	WebDir          string
	DemoAddr        string
	DebugAddr       string
	Auth            auth.Config
	DefaultPolicy   string
	GuestRetention  time.Duration
	UserRetention   time.Duration
	PurgeInterval   time.Duration
	CacheTTL        time.Duration
	ShutdownTimeout time.Duration
	ShutdownSpread  time.Duration
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

	store    syncserver.Store
	bus      syncserver.Bus
	rdb      *goredis.Client
	sync     *syncserver.Server
	http     *http.Server
	listener net.Listener
	demo     *http.Server
	demoLn   net.Listener
	debug    *http.Server
	debugLn  net.Listener
	verifier *auth.Verifier
	signer   *auth.Signer
	// demoSecret, in tests, is the demo storefront's signing secret
	// instead of a random one.
	demoSecret []byte
	stop       context.CancelFunc
	bg         sync.WaitGroup
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
	if m.PostgresURL != "" {
		pg, err := postgres.Open(ctx, m.PostgresURL, postgres.WithMaxConns(int32(m.PostgresConns)))
		if err != nil {
			// Not into m.store: a nil *Store in the interface would
			// be closed.
			return fmt.Errorf("open postgres: %w", err)
		}
		m.store = pg
		m.Logger.Info("store", "kind", "postgres")
	} else {
		path := filepath.Join(m.DataDir, "cartsync.db")
		lite, err := sqlite.Open(ctx, path)
		if err != nil {
			return fmt.Errorf("open sqlite %s: %w", path, err)
		}
		m.store = lite
		m.Logger.Info("store", "kind", "sqlite", "path", path)
	}
	if m.RedisURL != "" {
		opt, err := goredis.ParseURL(m.RedisURL)
		if err != nil {
			return fmt.Errorf("redis url: %w", err)
		}
		// Fail fast when Redis is down: the cache falls through to the
		// store, and a request must not wait out many dial retries.
		opt.DialTimeout = 2 * time.Second
		// The cache and the bus bound every call with a context; without
		// this go-redis ignores those deadlines and waits out its own
		// socket timeouts (seconds) on a Redis that hangs.
		opt.ContextTimeoutEnabled = true
		opt.DialerRetries = 1
		m.rdb = goredis.NewClient(opt)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if err := m.rdb.Ping(pctx).Err(); err != nil {
			// Redis is a cache and a bus: start without it and attach
			// when it answers (the client reconnects by itself).
			m.Logger.Warn("redis does not answer; starting without it, degraded until it does", "err", err)
		}
		cancel()
		m.store = redis.NewCache(m.store, m.rdb, m.RedisPrefix, m.CacheTTL, m.Logger)
		m.bus = redis.NewBus(m.rdb, m.RedisPrefix, m.Logger)
		m.Logger.Info("cache and fan-out", "kind", "redis")
	} else {
		m.bus = syncserver.NewMemBus()
	}
	if m.DemoAddr != "" && (len(m.Auth.HS256Secret) > 0 || m.Auth.PublicKeyFile != "" || m.Auth.JWKSURL != "") {
		// The demo storefront hands anyone a valid token for any user:
		// with a real key it would open every real account.
		return errors.New("demo storefront: refusing to start with a real user-token key (-auth-hs256-secret, -auth-public-key-file or -auth-jwks-url); the demo signs its own tokens and is never for production")
	}
	if m.DemoAddr != "" {
		m.demoLn, err = net.Listen("tcp", m.DemoAddr)
		if err != nil {
			return fmt.Errorf("demo storefront: %w", err)
		}
		m.AllowedOrigins = append(m.AllowedOrigins, "http://"+m.demoLn.Addr().String())
	}
	if m.demoLn != nil {
		// The demo storefront's backend has an API key and receives the
		// webhooks, both made up now.
		key := make([]byte, 24)
		rand.Read(key)
		m.demoAPIKey = "demo_" + hex.EncodeToString(key)
		m.APIKeys = append(m.APIKeys, m.demoAPIKey)
		if m.WebhookURL == "" {
			secret := make([]byte, 32)
			rand.Read(secret)
			m.WebhookSecrets = []string{"whsec_" + base64.StdEncoding.EncodeToString(secret)}
			m.WebhookURL = "http://" + m.demoLn.Addr().String() + "/demo/webhooks"
		}
	}
	if m.demoLn != nil {
		// The demo storefront signs its demo users' tokens itself, with
		// a secret made up now (tests may name it).
		m.Auth.HS256Secret = m.demoSecret
		if m.Auth.HS256Secret == nil {
			m.Auth.HS256Secret = make([]byte, 32)
			rand.Read(m.Auth.HS256Secret)
		}
	}
	if len(m.Auth.HS256Secret) > 0 {
		m.signer = auth.NewHS256Signer(m.Auth.HS256Secret)
	}
	var users syncserver.UserVerifier
	if len(m.Auth.HS256Secret) > 0 || m.Auth.PublicKeyFile != "" || m.Auth.JWKSURL != "" {
		m.Auth.Logger = m.Logger
		if m.verifier, err = auth.New(ctx, m.Auth); err != nil {
			return fmt.Errorf("user tokens: %w", err)
		}
		users = m.verifier
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var kick func()
	if m.WebhookURL != "" {
		es, ok := m.store.(syncserver.EventStore)
		if !ok {
			return errors.New("webhooks: this store keeps no events")
		}
		m.hooks, err = webhook.New(webhook.Config{
			Store: es, URL: m.WebhookURL, Secrets: m.WebhookSecrets, Logger: m.Logger,
			Registerer: reg, RetryWindow: m.WebhookWindow,
		})
		if err != nil {
			return fmt.Errorf("webhooks: %w", err)
		}
		kick = m.hooks.Kick
	}
	m.sync, err = syncserver.New(ctx, syncserver.Config{
		Store:          m.store,
		Bus:            m.bus,
		AllowedOrigins: m.AllowedOrigins,
		IPLimits:       m.IPLimits,
		Registerer:     reg,
		Logger:         m.Logger,
		Users:          users,
		DefaultPolicy:  cart.Policy(m.DefaultPolicy),
		GuestRetention: m.GuestRetention,
		UserRetention:  m.UserRetention,
		MaxHellos:      m.MaxHellos,
		ShutdownSpread: m.ShutdownSpread,
		APIKeys:        m.APIKeys,
		CatalogOnly:    m.CatalogOnly,
		CheckoutTTL:    m.CheckoutTTL,
		Events:         len(m.APIKeys) > 0,
		AbandonAfter:   map[string]time.Duration{syncserver.KindGuest: m.AbandonGuest, syncserver.KindUser: m.AbandonUser},
		EventsWritten:  kick,
		Webhooks:       m.hooks != nil,
		EventRetention: m.EventRetention,
	})
	if err != nil {
		return err
	}
	bgCtx, stop := context.WithCancel(context.Background())
	m.stop = stop
	if m.PurgeInterval > 0 {
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			m.purgeLoop(bgCtx)
		}()
	}
	if m.hooks != nil {
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			if err := m.hooks.Run(bgCtx); err != nil && bgCtx.Err() == nil {
				m.Logger.Error("webhooks", "err", err)
			}
		}()
	}
	if len(m.APIKeys) > 0 && m.AbandonInterval > 0 {
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			m.abandonLoop(bgCtx)
		}()
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", m.sync)
	mux.Handle("GET /healthz", m.sync.HealthHandler(false))
	mux.Handle("GET /readyz", m.sync.HealthHandler(true))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.listener, err = net.Listen("tcp", m.Addr)
	if err != nil {
		return err
	}
	ui, err := webui.New(webui.Config{WebDir: m.WebDir, Version: version, AllowedOrigins: m.AllowedOrigins, Logger: m.Logger})
	if err != nil {
		// The sync API works without the widget (native apps).
		m.Logger.Warn("widget not served", "err", err)
	} else {
		mux.Handle("/", ui)
	}
	if m.demoLn != nil {
		h, err := webui.NewDemo(webui.DemoConfig{WebDir: m.WebDir, CartServer: m.URL(), Signer: m.signer,
			APIKey: m.demoAPIKey, WebhookSecret: m.WebhookSecrets[0], Logger: m.Logger})
		if err != nil {
			return fmt.Errorf("demo storefront: %w", err)
		}
		m.demo = newHTTPServer(h)
		go m.demo.Serve(m.demoLn)
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			if m.demoNoCatalog {
				return
			}
			if err := webui.SeedDemoCatalog(bgCtx, m.URL(), m.demoAPIKey, "http://"+m.demoLn.Addr().String()); err != nil && bgCtx.Err() == nil {
				m.Logger.Error("demo catalog", "err", err)
			}
		}()
		m.Logger.Info("demo storefront", "url", "http://"+m.demoLn.Addr().String())
	}
	if m.DebugAddr != "" {
		if m.debugLn, err = net.Listen("tcp", m.DebugAddr); err != nil {
			return fmt.Errorf("debug address: %w", err)
		}
		dm := http.NewServeMux()
		dm.HandleFunc("/debug/pprof/", pprof.Index)
		dm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		dm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		dm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		dm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// No read or write timeout: a CPU profile or a trace streams for
		// as long as asked.
		m.debug = &http.Server{Handler: dm, ReadHeaderTimeout: readHeaderTimeout}
		go m.debug.Serve(m.debugLn)
		// A warning: whoever reaches it sees the program's internals.
		m.Logger.Warn("profiler", "url", "http://"+m.debugLn.Addr().String()+"/debug/pprof/")
	}
	m.http = newHTTPServer(mux)
	go func() {
		if err := m.http.Serve(m.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("serve", "err", err)
		}
	}()
	m.Logger.Info("listening", "addr", m.listener.Addr().String(), "version", version)
	return nil
}

// purgeLoop expires carts past their retention every PurgeInterval.
func (m *Main) purgeLoop(ctx context.Context) {
	t := time.NewTicker(m.PurgeInterval)
	defer t.Stop()
	for {
		if _, err := m.sync.Purge(ctx, 500); err != nil && ctx.Err() == nil {
			m.Logger.Error("purge", "err", err)
		}
		if _, err := m.sync.PruneEvents(ctx, 1000); err != nil && ctx.Err() == nil {
			m.Logger.Error("prune events", "err", err)
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
			m.Logger.Error("abandoned carts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

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
	if m.bus != nil {
		m.bus.Close()
	}
	if m.store != nil {
		m.store.Close()
	}
	if m.rdb != nil {
		m.rdb.Close()
	}
}
