package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	goredis "github.com/redis/go-redis/v9"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/auth"
	"github.com/cartsync/cartsync/syncserver/postgres"
	"github.com/cartsync/cartsync/syncserver/redis"
	"github.com/cartsync/cartsync/syncserver/sqlite"
	"github.com/cartsync/cartsync/syncserver/webhook"
	"github.com/cartsync/cartsync/syncserver/webui"
)

// The steps of Run, in order.

// openStore opens the durable store: Postgres if given a URL, else the
// embedded SQLite file in the data folder.
func (m *Main) openStore(ctx context.Context) error {
	if m.PostgresURL != "" {
		opts := []postgres.Option{postgres.WithMaxConns(int32(m.PostgresConns))}
		if m.Committers >= 0 {
			opts = append(opts, postgres.WithGroupCommit(m.Committers))
		}
		m.Logger.Info("opening the store", logkey.Kind, "postgres")
		pg, err := postgres.Open(ctx, m.PostgresURL, opts...)
		if err != nil {
			// Not into m.store: a nil *Store in the interface would
			// be closed.
			return fmt.Errorf("open postgres: %w", err)
		}
		m.store, m.committed = pg, pg
		m.Logger.Info("store", logkey.Kind, "postgres")
		m.logMigrations(pg)
		return nil
	}
	lock, err := lockDataDir(m.DataDir)
	if err != nil {
		return err
	}
	m.dataLock = lock
	path := filepath.Join(m.DataDir, "cartsync.db")
	lite, err := sqlite.Open(ctx, path, sqlite.WithGroupCommit(m.Committers != 0))
	if err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	m.store, m.committed = lite, lite
	m.Logger.Info("store", logkey.Kind, "sqlite", logkey.Path, path)
	m.logMigrations(lite)
	return nil
}

// logMigrations says which migrations the store applied as it opened, and
// warns when the database has some this program does not know.
func (m *Main) logMigrations(s interface {
	AppliedMigrations() []string
	UnknownMigrations() []string
}) {
	if applied := s.AppliedMigrations(); len(applied) > 0 {
		m.Logger.Info("database migrated", logkey.Count, len(applied), logkey.Migrations, strings.Join(applied, ","))
	}
	if newer := s.UnknownMigrations(); len(newer) > 0 {
		m.Logger.Warn("database migrated by a newer cartsync: running on it (migrations only add); upgrade this instance",
			logkey.Count, len(newer), logkey.Migrations, strings.Join(newer, ","))
	}
}

// openRedis puts the Redis cache in front of the store and makes Redis the
// bus, if given a URL; else the bus is in-process.
func (m *Main) openRedis(ctx context.Context) error {
	if m.RedisURL == "" {
		m.bus = syncserver.NewMemBus()
		return nil
	}
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
	goredis.SetLogger(&redisLogger{log: m.Logger, every: redisLogEvery})
	m.rdb = goredis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = m.rdb.Ping(pctx).Err()
	cancel()
	switch {
	case refusal(err):
		// Redis answers, and refuses this client: a wrong password,
		// user or database in the URL. Waiting does not mend that.
		m.rdb.Close()
		m.rdb = nil
		return fmt.Errorf("redis refuses the connection (check the user, password and database number in -redis-url): %w", err)
	case err != nil:
		// Redis is a cache and a bus: start without it and attach
		// when it answers (the client reconnects by itself).
		m.Logger.Warn("redis does not answer; starting without it, degraded until it does", logkey.Err, err)
	}
	m.store = redis.NewCache(m.store, m.rdb, m.RedisPrefix, m.CacheTTL, m.Logger)
	m.bus = redis.NewBus(m.rdb, m.RedisPrefix, m.Logger)
	m.Logger.Info("cache and fan-out", logkey.Kind, "redis")
	return nil
}

// prepareDemo listens for the demo storefront, if asked to, and makes up
// its origin's admission, its API key, its webhook secret and the secret
// it signs its users' tokens with.
func (m *Main) prepareDemo() error {
	if m.DemoAddr == "" {
		return nil
	}
	if len(m.Auth.HS256Secret) > 0 || m.Auth.PublicKeyFile != "" || m.Auth.JWKSURL != "" {
		// The demo storefront hands anyone a valid token for any user:
		// with a real key it would open every real account.
		return errors.New("demo storefront: refusing to start with a real user-token key (-auth-hs256-secret, -auth-public-key-file or -auth-jwks-url); the demo signs its own tokens and is never for production")
	}
	var err error
	if m.demoLn, err = net.Listen("tcp", m.DemoAddr); err != nil {
		return fmt.Errorf("demo storefront: %w", err)
	}
	m.AllowedOrigins = append(m.AllowedOrigins, "http://"+m.demoLn.Addr().String())
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
	// Tests may name the secret.
	m.Auth.HS256Secret = m.demoSecret
	if m.Auth.HS256Secret == nil {
		m.Auth.HS256Secret = make([]byte, 32)
		rand.Read(m.Auth.HS256Secret)
	}
	return nil
}

// userVerifier builds the verifier of user tokens (nil without any key),
// and the demo's signer.
func (m *Main) userVerifier(ctx context.Context) (syncserver.UserVerifier, error) {
	if len(m.Auth.HS256Secret) > 0 {
		m.signer = auth.NewHS256Signer(m.Auth.HS256Secret)
	}
	if len(m.Auth.HS256Secret) == 0 && m.Auth.PublicKeyFile == "" && m.Auth.JWKSURL == "" {
		return nil, nil
	}
	m.Auth.Logger = m.Logger
	var err error
	if m.verifier, err = auth.New(ctx, m.Auth); err != nil {
		return nil, fmt.Errorf("user tokens: %w", err)
	}
	return m.verifier, nil
}

// openWebhooks builds the webhook deliverer, if a URL is set.
func (m *Main) openWebhooks(reg prometheus.Registerer) error {
	if m.WebhookURL == "" {
		return nil
	}
	es, ok := m.store.(syncserver.EventStore)
	if !ok {
		return errors.New("webhooks: this store keeps no events")
	}
	var err error
	m.hooks, err = webhook.New(webhook.Config{
		Store: es, URL: m.WebhookURL, Secrets: m.WebhookSecrets, Logger: m.Logger,
		Registerer: reg, RetryWindow: m.WebhookWindow,
	})
	if err != nil {
		return fmt.Errorf("webhooks: %w", err)
	}
	return nil
}

// syncConfig is the sync server's configuration from the flags.
func (m *Main) syncConfig(users syncserver.UserVerifier, reg prometheus.Registerer) syncserver.Config {
	var kick func()
	if m.hooks != nil {
		kick = m.hooks.Kick
	}
	return syncserver.Config{
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
	}
}

// startBackground starts the jobs that run until Close: the purge, the
// webhook deliverer and the abandoned-cart scan.
func (m *Main) startBackground(ctx context.Context) {
	run := func(fn func()) {
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			fn()
		}()
	}
	if m.PurgeInterval > 0 {
		run(func() { m.purgeLoop(ctx) })
	}
	if m.hooks != nil {
		run(func() {
			if err := m.hooks.Run(ctx); err != nil && ctx.Err() == nil {
				m.Logger.Error("webhooks", logkey.Err, err)
			}
		})
	}
	if len(m.APIKeys) > 0 && m.AbandonInterval > 0 {
		run(func() { m.abandonLoop(ctx) })
	}
}

// routes is the cart server's handler: the API, health, metrics and, when
// its files are there, the widget. Every /v1/ path goes to the sync server
// as it came: this mux would answer one with an empty or dot segment with
// a redirect that keeps the method and body (to another user's cart, for
// /v1/backend/users/alice/../bob/...), where the sync server refuses it.
func (m *Main) routes(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/v1/", m.sync)
	mux.Handle("GET /healthz", m.sync.HealthHandler(false))
	mux.Handle("GET /readyz", m.sync.HealthHandler(true))
	if m.MetricsAddr == "" {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	ui, err := webui.New(webui.Config{WebDir: m.WebDir, Version: version, AllowedOrigins: m.AllowedOrigins, OriginAgentCluster: m.OriginAgentCluster, Logger: m.Logger})
	if err != nil {
		// The sync API works without the widget (native apps).
		m.Logger.Warn("widget not served", logkey.Err, err)
	} else {
		mux.Handle("/", ui)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			m.sync.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// serveDemo serves the demo storefront, if asked to, and seeds its
// catalog in the background.
func (m *Main) serveDemo(ctx context.Context) error {
	if m.demoLn == nil {
		return nil
	}
	demoURL := "http://" + m.demoLn.Addr().String()
	h, err := webui.NewDemo(webui.DemoConfig{WebDir: m.WebDir, CartServer: m.URL(), Signer: m.signer,
		APIKey: m.demoAPIKey, WebhookSecret: m.WebhookSecrets[0], Logger: m.Logger})
	if err != nil {
		return fmt.Errorf("demo storefront: %w", err)
	}
	m.demo = newHTTPServer(h)
	go m.demo.Serve(m.demoLn)
	if !m.demoNoCatalog {
		m.bg.Add(1)
		go func() {
			defer m.bg.Done()
			if err := webui.SeedDemoCatalog(ctx, m.URL(), m.demoAPIKey, demoURL); err != nil && ctx.Err() == nil {
				m.Logger.Error("demo catalog", logkey.Err, err)
			}
		}()
	}
	m.Logger.Info("demo storefront", logkey.URL, demoURL)
	return nil
}

// serveMetrics serves /metrics on its own address, if asked to (the main
// listener then does not).
func (m *Main) serveMetrics(reg *prometheus.Registry) error {
	if m.MetricsAddr == "" {
		return nil
	}
	var err error
	if m.metricsLn, err = net.Listen("tcp", m.MetricsAddr); err != nil {
		return fmt.Errorf("metrics address: %w", err)
	}
	mm := http.NewServeMux()
	mm.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.metrics = newHTTPServer(mm)
	go m.metrics.Serve(m.metricsLn)
	m.Logger.Info("metrics", logkey.URL, "http://"+m.metricsLn.Addr().String()+"/metrics")
	return nil
}

// serveDebug serves Go's profiler on its own address, if asked to.
func (m *Main) serveDebug() error {
	if m.DebugAddr == "" {
		return nil
	}
	var err error
	if m.debugLn, err = net.Listen("tcp", m.DebugAddr); err != nil {
		return fmt.Errorf("debug address: %w", err)
	}
	dm := http.NewServeMux()
	dm.HandleFunc("/debug/pprof/", pprof.Index)
	dm.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	dm.HandleFunc("/debug/pprof/profile", pprof.Profile)
	dm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	dm.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No read or write timeout: a CPU profile or a trace streams for as
	// long as asked.
	m.debug = &http.Server{Handler: dm, ReadHeaderTimeout: readHeaderTimeout}
	go m.debug.Serve(m.debugLn)
	// A warning: whoever reaches it sees the program's internals.
	m.Logger.Warn("profiler", logkey.URL, "http://"+m.debugLn.Addr().String()+"/debug/pprof/")
	return nil
}

// refusal reports whether err is Redis's answer refusing this client for
// its configuration: a wrong user or password, a user without the rights,
// a database number Redis does not have. Anything else (no answer, busy
// loading, too many clients for now) may mend by itself.
func refusal(err error) bool {
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	if goredis.IsAuthError(err) {
		return true // NOAUTH, WRONGPASS
	}
	msg := rerr.Error()
	for _, p := range []string{"NOPERM", "ERR DB index", "ERR invalid DB index", "ERR AUTH", "ERR invalid password", "ERR Client sent AUTH"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
