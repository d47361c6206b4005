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
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
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
	var secret string
	fs.StringVar(&m.DebugAddr, "debug-addr", env("CARTSYNC_DEBUG_ADDR", ""), "if set, serve Go's profiler (/debug/pprof/) on this address; keep it on loopback or a private network (CARTSYNC_DEBUG_ADDR)")
	fs.StringVar(&secret, "auth-hs256-secret", env("CARTSYNC_AUTH_HS256_SECRET", ""), "shared secret for HS256 user tokens from the storefront (CARTSYNC_AUTH_HS256_SECRET)")
	fs.StringVar(&m.Auth.PublicKeyFile, "auth-public-key-file", env("CARTSYNC_AUTH_PUBLIC_KEY_FILE", ""), "PEM or JWKS file of EdDSA/RS256 public keys for user tokens (CARTSYNC_AUTH_PUBLIC_KEY_FILE)")
	fs.StringVar(&m.Auth.JWKSURL, "auth-jwks-url", env("CARTSYNC_AUTH_JWKS_URL", ""), "JWKS URL of EdDSA/RS256 public keys for user tokens (CARTSYNC_AUTH_JWKS_URL)")
	fs.StringVar(&m.Auth.Audience, "auth-audience", env("CARTSYNC_AUTH_AUDIENCE", ""), "required aud of user tokens, if set (CARTSYNC_AUTH_AUDIENCE)")
	fs.StringVar(&m.Auth.Issuer, "auth-issuer", env("CARTSYNC_AUTH_ISSUER", ""), "required iss of user tokens, if set (CARTSYNC_AUTH_ISSUER)")
	fs.BoolVar(&m.Auth.RequireAudienceIssuer, "auth-require-aud-iss", envBool(getenv, "CARTSYNC_AUTH_REQUIRE_AUD_ISS", false), "refuse to start when public keys or a JWKS URL are set without both -auth-audience and -auth-issuer; without it, start with a loud warning (CARTSYNC_AUTH_REQUIRE_AUD_ISS)")
	fs.DurationVar(&m.Auth.Leeway, "auth-leeway", envDuration(getenv, "CARTSYNC_AUTH_LEEWAY", 0), "allowed clock skew on user tokens' exp, nbf and iat; 0 means 30s (CARTSYNC_AUTH_LEEWAY)")
	fs.StringVar(&m.DefaultPolicy, "default-merge-policy", env("CARTSYNC_DEFAULT_MERGE_POLICY", m.DefaultPolicy), "login merge policy when the storefront names none: merge, replace, keep or choose (CARTSYNC_DEFAULT_MERGE_POLICY)")
	fs.DurationVar(&m.GuestRetention, "guest-retention", envDuration(getenv, "CARTSYNC_GUEST_RETENTION", m.GuestRetention), "how long a guest cart is kept after its last change (CARTSYNC_GUEST_RETENTION)")
	fs.DurationVar(&m.UserRetention, "user-retention", envDuration(getenv, "CARTSYNC_USER_RETENTION", m.UserRetention), "how long a user cart is kept after its last change; 0 keeps them (CARTSYNC_USER_RETENTION)")
	fs.DurationVar(&m.PurgeInterval, "purge-interval", envDuration(getenv, "CARTSYNC_PURGE_INTERVAL", m.PurgeInterval), "how often expired carts are purged; 0 disables the job (CARTSYNC_PURGE_INTERVAL)")
	fs.IntVar(&m.MaxHellos, "max-hellos", envInt(getenv, "CARTSYNC_MAX_HELLOS", m.MaxHellos), "hellos handled at once; past it a hello waits up to 10s, then is told to retry in 1-3s (CARTSYNC_MAX_HELLOS)")
	fs.DurationVar(&m.ShutdownSpread, "shutdown-spread", envDuration(getenv, "CARTSYNC_SHUTDOWN_SPREAD", m.ShutdownSpread), "on SIGTERM, close connections spread over this long and ask clients back spread over the same length after it; negative closes all at once (CARTSYNC_SHUTDOWN_SPREAD)")
	fs.IntVar(&m.IPLimits.MaxConns, "max-conns-per-ip", envInt(getenv, "CARTSYNC_MAX_CONNS_PER_IP", m.IPLimits.MaxConns), "open websockets per client address (IPv6: per /64); 0 means 2000, negative no limit (CARTSYNC_MAX_CONNS_PER_IP)")
	fs.Float64Var(&m.IPLimits.Rate, "rate-per-ip", envFloat(getenv, "CARTSYNC_RATE_PER_IP", m.IPLimits.Rate), "sustained HTTP requests (websocket upgrades included) per second per client address; 0 means 100, negative no limit (CARTSYNC_RATE_PER_IP)")
	fs.IntVar(&m.IPLimits.Burst, "burst-per-ip", envInt(getenv, "CARTSYNC_BURST_PER_IP", m.IPLimits.Burst), "HTTP requests one client address may make at once; 0 means 2000 (CARTSYNC_BURST_PER_IP)")
	fs.Float64Var(&m.IPLimits.DeviceRate, "devices-per-ip", envFloat(getenv, "CARTSYNC_DEVICES_PER_IP", m.IPLimits.DeviceRate), "sustained new device tokens per second per client address; 0 means 10, negative no limit (CARTSYNC_DEVICES_PER_IP)")
	fs.IntVar(&m.IPLimits.DeviceBurst, "device-burst-per-ip", envInt(getenv, "CARTSYNC_DEVICE_BURST_PER_IP", m.IPLimits.DeviceBurst), "new device tokens one client address may get at once; 0 means 1000 (CARTSYNC_DEVICE_BURST_PER_IP)")
	fs.DurationVar(&m.IPLimits.BodyTimeout, "body-timeout", envDuration(getenv, "CARTSYNC_BODY_TIMEOUT", m.IPLimits.BodyTimeout), "time a client has to send a request body; 0 means 30s (CARTSYNC_BODY_TIMEOUT)")
	var proxies string
	fs.StringVar(&proxies, "trusted-proxies", env("CARTSYNC_TRUSTED_PROXIES", ""), "comma-separated addresses or CIDR blocks of reverse proxies whose X-Forwarded-For names the client address for the per-address limits; empty ignores the header (CARTSYNC_TRUSTED_PROXIES)")
	var apiKeys, hookSecrets string
	fs.StringVar(&apiKeys, "api-keys", env("CARTSYNC_API_KEYS", ""), "comma-separated API keys of the storefront's backend (at least 32 characters each; several at once to rotate); they open /v1/backend/ and turn on cart events (CARTSYNC_API_KEYS)")
	fs.BoolVar(&m.CatalogOnly, "catalog-only", envBool(getenv, "CARTSYNC_CATALOG_ONLY", false), "refuse adds of SKUs the catalog does not know (CARTSYNC_CATALOG_ONLY)")
	fs.DurationVar(&m.CheckoutTTL, "checkout-ttl", envDuration(getenv, "CARTSYNC_CHECKOUT_TTL", m.CheckoutTTL), "how long a checkout stays open before it expires (CARTSYNC_CHECKOUT_TTL)")
	fs.DurationVar(&m.AbandonGuest, "abandon-after-guest", envDuration(getenv, "CARTSYNC_ABANDON_AFTER_GUEST", m.AbandonGuest), "a guest cart with items unchanged this long is abandoned (a cart.abandoned event); negative never (CARTSYNC_ABANDON_AFTER_GUEST)")
	fs.DurationVar(&m.AbandonUser, "abandon-after-user", envDuration(getenv, "CARTSYNC_ABANDON_AFTER_USER", m.AbandonUser), "the same for user carts (CARTSYNC_ABANDON_AFTER_USER)")
	fs.StringVar(&m.WebhookURL, "webhook-url", env("CARTSYNC_WEBHOOK_URL", ""), "the storefront's URL that receives cart events as signed webhooks; needs -api-keys and -webhook-secrets (CARTSYNC_WEBHOOK_URL)")
	fs.StringVar(&hookSecrets, "webhook-secrets", env("CARTSYNC_WEBHOOK_SECRETS", ""), "comma-separated webhook signing secrets (whsec_...); each signs every delivery, so a secret can be rotated (CARTSYNC_WEBHOOK_SECRETS)")
	fs.DurationVar(&m.WebhookWindow, "webhook-retry-window", envDuration(getenv, "CARTSYNC_WEBHOOK_RETRY_WINDOW", m.WebhookWindow), "how long a webhook that fails is retried before it is dead (CARTSYNC_WEBHOOK_RETRY_WINDOW)")
	fs.DurationVar(&m.EventRetention, "event-retention", envDuration(getenv, "CARTSYNC_EVENT_RETENTION", m.EventRetention), "how long cart events stay in the outbox and the feed once delivered (pending ones stay until delivered); negative forever (CARTSYNC_EVENT_RETENTION)")
	fs.StringVar(&level, "log-level", env("CARTSYNC_LOG_LEVEL", "info"), "debug, info, warn or error (CARTSYNC_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	m.Auth.HS256Secret = []byte(secret)
	m.APIKeys, m.WebhookSecrets = splitList(apiKeys), splitList(hookSecrets)
	if m.WebhookURL != "" && (len(m.APIKeys) == 0 || len(m.WebhookSecrets) == 0) {
		return errors.New("-webhook-url needs -api-keys (events are recorded for the storefront's backend) and -webhook-secrets")
	}
	m.IPLimits.TrustedProxies = nil
	for _, p := range strings.Split(proxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return fmt.Errorf("trusted proxy %q: not an address or CIDR block", p)
			}
			pfx = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		m.IPLimits.TrustedProxies = append(m.IPLimits.TrustedProxies, pfx.Masked())
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

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func envInt(getenv func(string) string, name string, def int) int {
	if n, err := strconv.Atoi(getenv(name)); err == nil {
		return n
	}
	return def
}

func envBool(getenv func(string) string, name string, def bool) bool {
	if b, err := strconv.ParseBool(getenv(name)); err == nil {
		return b
	}
	return def
}

func envFloat(getenv func(string) string, name string, def float64) float64 {
	if f, err := strconv.ParseFloat(getenv(name), 64); err == nil {
		return f
	}
	return def
}

func envDuration(getenv func(string) string, name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(getenv(name)); err == nil {
		return d
	}
	return def
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
