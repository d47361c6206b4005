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
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	goredis "github.com/redis/go-redis/v9"

	"cartsync/syncserver"
	"cartsync/syncserver/postgres"
	"cartsync/syncserver/redis"
	"cartsync/syncserver/sqlite"
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
	CacheTTL        time.Duration
	ShutdownTimeout time.Duration
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
		Logger:          slog.Default(),
	}
}

// ParseFlags reads flags, each with an environment fallback.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("cartsync", flag.ContinueOnError)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	var origins, level string
	fs.StringVar(&m.Addr, "addr", env("CARTSYNC_ADDR", m.Addr), "listen address (CARTSYNC_ADDR)")
	fs.StringVar(&m.DataDir, "data", env("CARTSYNC_DATA", m.DataDir), "data folder for the embedded SQLite store (CARTSYNC_DATA)")
	fs.StringVar(&m.PostgresURL, "postgres-url", env("CARTSYNC_POSTGRES_URL", ""), "Postgres URL; empty uses the embedded SQLite store (CARTSYNC_POSTGRES_URL)")
	fs.IntVar(&m.PostgresConns, "postgres-max-conns", envInt(getenv, "CARTSYNC_POSTGRES_MAX_CONNS", 16), "Postgres connection pool size (CARTSYNC_POSTGRES_MAX_CONNS)")
	fs.StringVar(&m.RedisURL, "redis-url", env("CARTSYNC_REDIS_URL", ""), "Redis URL for cache and fan-out; empty means in-process (CARTSYNC_REDIS_URL)")
	fs.StringVar(&m.RedisPrefix, "redis-prefix", env("CARTSYNC_REDIS_PREFIX", m.RedisPrefix), "prefix of every Redis key and channel (CARTSYNC_REDIS_PREFIX)")
	fs.DurationVar(&m.CacheTTL, "cache-ttl", envDuration(getenv, "CARTSYNC_CACHE_TTL", m.CacheTTL), "how long a cart stays in the Redis cache after its last write (CARTSYNC_CACHE_TTL)")
	fs.StringVar(&origins, "allowed-origins", env("CARTSYNC_ALLOWED_ORIGINS", ""), "comma-separated storefront origins allowed to embed the cart, e.g. https://shop.example.com (CARTSYNC_ALLOWED_ORIGINS)")
	fs.StringVar(&m.WebDir, "web", env("CARTSYNC_WEB", m.WebDir), "folder of the widget's files: app.wasm, widget.css, icons, embed.js, demo (CARTSYNC_WEB)")
	fs.StringVar(&m.DemoAddr, "demo-addr", env("CARTSYNC_DEMO_ADDR", ""), "if set, also serve the demo storefront on this address, a second origin allowed to embed the cart (CARTSYNC_DEMO_ADDR)")
	fs.StringVar(&level, "log-level", env("CARTSYNC_LOG_LEVEL", "info"), "debug, info, warn or error (CARTSYNC_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := m.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	m.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: m.LogLevel}))
	m.AllowedOrigins = nil
	for _, o := range strings.Split(origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			m.AllowedOrigins = append(m.AllowedOrigins, o)
		}
	}
	return nil
}

func envInt(getenv func(string) string, name string, def int) int {
	if n, err := strconv.Atoi(getenv(name)); err == nil {
		return n
	}
	return def
}

func envDuration(getenv func(string) string, name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(getenv(name)); err == nil {
		return d
	}
	return def
}

// originHosts turns origins into the host patterns websocket.Accept takes.
func originHosts(origins []string) []string {
	var out []string
	for _, o := range origins {
		o = strings.TrimPrefix(strings.TrimPrefix(o, "https://"), "http://")
		out = append(out, strings.TrimSuffix(o, "/"))
	}
	return out
}

// Run opens the stores and starts serving; it returns once listening.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.closeBackends()
		}
	}()
	if m.PostgresURL != "" {
		m.store, err = postgres.Open(ctx, m.PostgresURL, postgres.WithMaxConns(int32(m.PostgresConns)))
		if err != nil {
			return fmt.Errorf("open postgres: %w", err)
		}
		m.Logger.Info("store", "kind", "postgres")
	} else {
		path := filepath.Join(m.DataDir, "cartsync.db")
		m.store, err = sqlite.Open(ctx, path)
		if err != nil {
			return fmt.Errorf("open sqlite %s: %w", path, err)
		}
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
		opt.DialerRetries = 1
		m.rdb = goredis.NewClient(opt)
		if err := m.rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis ping: %w", err)
		}
		m.store = redis.NewCache(m.store, m.rdb, m.RedisPrefix, m.CacheTTL, m.Logger)
		m.bus = redis.NewBus(m.rdb, m.RedisPrefix, m.Logger)
		m.Logger.Info("cache and fan-out", "kind", "redis")
	} else {
		m.bus = syncserver.NewMemBus()
	}
	if m.DemoAddr != "" {
		m.demoLn, err = net.Listen("tcp", m.DemoAddr)
		if err != nil {
			return fmt.Errorf("demo storefront: %w", err)
		}
		m.AllowedOrigins = append(m.AllowedOrigins, "http://"+m.demoLn.Addr().String())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.sync, err = syncserver.New(ctx, syncserver.Config{
		Store:          m.store,
		Bus:            m.bus,
		OriginPatterns: originHosts(m.AllowedOrigins),
		Registerer:     reg,
		Logger:         m.Logger,
	})
	if err != nil {
		return err
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
		m.demo = &http.Server{Handler: webui.Demo(m.WebDir, m.URL()), ReadHeaderTimeout: 10 * time.Second}
		go m.demo.Serve(m.demoLn)
		m.Logger.Info("demo storefront", "url", "http://"+m.demoLn.Addr().String())
	}
	m.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := m.http.Serve(m.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("serve", "err", err)
		}
	}()
	m.Logger.Info("listening", "addr", m.listener.Addr().String(), "version", version)
	return nil
}

// URL is the base URL the server listens on.
func (m *Main) URL() string { return "http://" + m.listener.Addr().String() }

// Close drains connections and closes the backends.
func (m *Main) Close(ctx context.Context) error {
	var errs []error
	if m.demo != nil {
		errs = append(errs, m.demo.Shutdown(ctx))
	}
	if m.http != nil {
		errs = append(errs, m.http.Shutdown(ctx))
	}
	if m.sync != nil {
		errs = append(errs, m.sync.Shutdown(ctx))
	}
	m.closeBackends()
	return errors.Join(errs...)
}

func (m *Main) closeBackends() {
	if m.demoLn != nil && m.demo == nil {
		m.demoLn.Close()
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
