package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cartsync/cartsync/syncserver/gcfloor"
)

// ParseFlags reads flags, each with an environment fallback.
func (m *Main) ParseFlags(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet("cartsync", flag.ContinueOnError)
	var origins, level string
	fs.StringVar(&m.Addr, "addr", m.Addr, "listen address (CARTSYNC_ADDR)")
	fs.StringVar(&m.DataDir, "data", m.DataDir, "data folder for the embedded SQLite store (CARTSYNC_DATA)")
	fs.StringVar(&m.PostgresURL, "postgres-url", "", "Postgres URL; empty uses the embedded SQLite store (CARTSYNC_POSTGRES_URL)")
	fs.IntVar(&m.PostgresConns, "postgres-max-conns", 16, "Postgres connection pool size (CARTSYNC_POSTGRES_MAX_CONNS)")
	fs.IntVar(&m.Committers, "committers", m.Committers, "group commit: how many batches of edits commit at once; the edits that arrive meanwhile form the next batch. 0 commits each edit in a transaction of its own; -1 is 2 on Postgres, 1 on SQLite, which has one writer (CARTSYNC_COMMITTERS)")
	fs.StringVar(&m.RedisURL, "redis-url", "", "Redis URL for cache and fan-out; empty means in-process (CARTSYNC_REDIS_URL)")
	fs.StringVar(&m.RedisPrefix, "redis-prefix", m.RedisPrefix, "prefix of every Redis key and channel (CARTSYNC_REDIS_PREFIX)")
	fs.DurationVar(&m.CacheTTL, "cache-ttl", m.CacheTTL, "how long a cart stays in the Redis cache after its last write (CARTSYNC_CACHE_TTL)")
	fs.StringVar(&origins, "allowed-origins", "", "comma-separated storefront origins allowed to embed the cart, e.g. https://shop.example.com (CARTSYNC_ALLOWED_ORIGINS)")
	fs.StringVar(&m.WebDir, "web", m.WebDir, "folder of the widget's files: app.wasm, widget.css, icons, embed.js, demo (CARTSYNC_WEB)")
	fs.StringVar(&m.DemoAddr, "demo-addr", "", "if set, also serve the demo storefront on this address, a second origin allowed to embed the cart (CARTSYNC_DEMO_ADDR)")
	var secret string
	fs.BoolVar(&m.OriginAgentCluster, "origin-agent-cluster", true, "send Origin-Agent-Cluster: ?1 with the widget page, so that browsers run the widget in a process of its own on a same-site storefront (cart.shop.com in shop.com) and starting it does not block the storefront's page (CARTSYNC_ORIGIN_AGENT_CLUSTER)")
	fs.IntVar(&m.HeapFloorMiB, "gc-heap-floor", m.HeapFloorMiB, "MiB the Go heap may grow to before it is collected while less than half of it is live; above that the collector runs as GOGC says (100 by default). Under load a server keeps a few MiB live and collects far less often with it; 0 turns it off (CARTSYNC_GC_HEAP_FLOOR)")
	fs.BoolVar(&m.IdleRelease, "gc-idle-release", m.IdleRelease, fmt.Sprintf("give the heap's free memory back to the system once no collection has run for %v and more than %d MiB is held above what is live: after a storm of connections, an idle server would otherwise keep what their handshakes left (CARTSYNC_GC_IDLE_RELEASE)", gcfloor.IdleRelease, gcfloor.ReleaseMin>>20))
	fs.StringVar(&m.MetricsAddr, "metrics-addr", "", "if set, serve /metrics on this address only, not on -addr's listener the shoppers reach; keep it on loopback or a private network (CARTSYNC_METRICS_ADDR)")
	fs.StringVar(&m.DebugAddr, "debug-addr", "", "if set, serve Go's profiler (/debug/pprof/) on this address; keep it on loopback or a private network (CARTSYNC_DEBUG_ADDR)")
	fs.StringVar(&secret, "auth-hs256-secret", "", "shared secret for HS256 user tokens from the storefront (CARTSYNC_AUTH_HS256_SECRET)")
	fs.StringVar(&m.Auth.PublicKeyFile, "auth-public-key-file", "", "PEM or JWKS file of EdDSA/RS256 public keys for user tokens (CARTSYNC_AUTH_PUBLIC_KEY_FILE)")
	fs.StringVar(&m.Auth.JWKSURL, "auth-jwks-url", "", "JWKS URL of EdDSA/RS256 public keys for user tokens (CARTSYNC_AUTH_JWKS_URL)")
	fs.StringVar(&m.Auth.Audience, "auth-audience", "", "required aud of user tokens, if set (CARTSYNC_AUTH_AUDIENCE)")
	fs.StringVar(&m.Auth.Issuer, "auth-issuer", "", "required iss of user tokens, if set (CARTSYNC_AUTH_ISSUER)")
	fs.BoolVar(&m.Auth.RequireAudienceIssuer, "auth-require-aud-iss", false, "refuse to start when public keys or a JWKS URL are set without both -auth-audience and -auth-issuer; without it, start with a loud warning (CARTSYNC_AUTH_REQUIRE_AUD_ISS)")
	fs.DurationVar(&m.Auth.Leeway, "auth-leeway", 0, "allowed clock skew on user tokens' exp, nbf and iat; 0 means 30s (CARTSYNC_AUTH_LEEWAY)")
	fs.StringVar(&m.DefaultPolicy, "default-merge-policy", m.DefaultPolicy, "login merge policy when the storefront names none: merge, replace, keep or choose (CARTSYNC_DEFAULT_MERGE_POLICY)")
	fs.DurationVar(&m.GuestRetention, "guest-retention", m.GuestRetention, "how long a guest cart is kept after its last change (CARTSYNC_GUEST_RETENTION)")
	fs.DurationVar(&m.UserRetention, "user-retention", m.UserRetention, "how long a user cart is kept after its last change; 0 keeps them (CARTSYNC_USER_RETENTION)")
	fs.DurationVar(&m.PurgeInterval, "purge-interval", m.PurgeInterval, "how often expired carts are purged; 0 disables the job (CARTSYNC_PURGE_INTERVAL)")
	fs.IntVar(&m.MaxHellos, "max-hellos", m.MaxHellos, "hellos handled at once; past it a hello waits up to 10s, then is told to retry in 1-3s (CARTSYNC_MAX_HELLOS)")
	fs.DurationVar(&m.ShutdownSpread, "shutdown-spread", m.ShutdownSpread, "on SIGTERM, close connections spread over this long and ask clients back spread over the same length after it; negative closes all at once (CARTSYNC_SHUTDOWN_SPREAD)")
	fs.DurationVar(&m.DrainDelay, "drain-delay", m.DrainDelay, "on SIGTERM, answer /readyz 503 draining this long, still serving, before closing the listener: set it past the load balancer's time to notice (CARTSYNC_DRAIN_DELAY)")
	fs.IntVar(&m.IPLimits.MaxConns, "max-conns-per-ip", m.IPLimits.MaxConns, "open websockets per client address (IPv6: per /64); 0 means 2000, negative no limit (CARTSYNC_MAX_CONNS_PER_IP)")
	fs.Float64Var(&m.IPLimits.Rate, "rate-per-ip", m.IPLimits.Rate, "sustained HTTP requests (websocket upgrades included) per second per client address; 0 means 100, negative no limit (CARTSYNC_RATE_PER_IP)")
	fs.IntVar(&m.IPLimits.Burst, "burst-per-ip", m.IPLimits.Burst, "HTTP requests one client address may make at once; 0 means 2000 (CARTSYNC_BURST_PER_IP)")
	fs.Float64Var(&m.IPLimits.DeviceRate, "devices-per-ip", m.IPLimits.DeviceRate, "sustained new device tokens per second per client address; 0 means 10, negative no limit (CARTSYNC_DEVICES_PER_IP)")
	fs.IntVar(&m.IPLimits.DeviceBurst, "device-burst-per-ip", m.IPLimits.DeviceBurst, "new device tokens one client address may get at once; 0 means 1000 (CARTSYNC_DEVICE_BURST_PER_IP)")
	fs.Float64Var(&m.IPLimits.EditRate, "edits-per-ip", m.IPLimits.EditRate, "sustained edits per second per client address: each op of a push or of an HTTP ops request, and each sync; 0 means 200, negative no limit (CARTSYNC_EDITS_PER_IP)")
	fs.IntVar(&m.IPLimits.EditBurst, "edit-burst-per-ip", m.IPLimits.EditBurst, "edits one client address may make at once; 0 means 2000 (CARTSYNC_EDIT_BURST_PER_IP)")
	fs.DurationVar(&m.IPLimits.BodyTimeout, "body-timeout", m.IPLimits.BodyTimeout, "time a client has to send a request body; 0 means 30s (CARTSYNC_BODY_TIMEOUT)")
	var proxies string
	fs.StringVar(&proxies, "trusted-proxies", "", "comma-separated addresses or CIDR blocks of reverse proxies whose X-Forwarded-For names the client address for the per-address limits; empty ignores the header (CARTSYNC_TRUSTED_PROXIES)")
	var apiKeys, hookSecrets string
	fs.StringVar(&apiKeys, "api-keys", "", "comma-separated API keys of the storefront's backend (at least 32 characters each; several at once to rotate); they open /v1/backend/ and turn on cart events (CARTSYNC_API_KEYS)")
	fs.BoolVar(&m.CatalogOnly, "catalog-only", false, "refuse adds of SKUs the catalog does not know (CARTSYNC_CATALOG_ONLY)")
	fs.DurationVar(&m.CheckoutTTL, "checkout-ttl", m.CheckoutTTL, "how long a checkout stays open before it expires (CARTSYNC_CHECKOUT_TTL)")
	fs.DurationVar(&m.AbandonGuest, "abandon-after-guest", m.AbandonGuest, "a guest cart with items unchanged this long is abandoned (a cart.abandoned event); negative never (CARTSYNC_ABANDON_AFTER_GUEST)")
	fs.DurationVar(&m.AbandonUser, "abandon-after-user", m.AbandonUser, "the same for user carts (CARTSYNC_ABANDON_AFTER_USER)")
	fs.StringVar(&m.WebhookURL, "webhook-url", "", "the storefront's URL that receives cart events as signed webhooks; needs -api-keys and -webhook-secrets (CARTSYNC_WEBHOOK_URL)")
	fs.StringVar(&hookSecrets, "webhook-secrets", "", "comma-separated webhook signing secrets (whsec_...); each signs every delivery, so a secret can be rotated (CARTSYNC_WEBHOOK_SECRETS)")
	fs.DurationVar(&m.WebhookWindow, "webhook-retry-window", m.WebhookWindow, "how long a webhook that fails is retried, from its first attempt, before it is dead (CARTSYNC_WEBHOOK_RETRY_WINDOW)")
	fs.DurationVar(&m.EventRetention, "event-retention", m.EventRetention, "how long cart events stay in the outbox and the feed once delivered (pending ones stay until delivered, while webhooks are on); negative forever (CARTSYNC_EVENT_RETENTION)")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error (CARTSYNC_LOG_LEVEL)")
	if err := applyEnv(fs, getenv); err != nil {
		return err
	}
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
	if err := m.checkValues(); err != nil {
		return err
	}
	if m.HeapFloorMiB < 0 || m.HeapFloorMiB > 1<<20 {
		return fmt.Errorf("-gc-heap-floor %d: not a size in MiB (0 turns it off)", m.HeapFloorMiB)
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

// checkValues refuses values a flag's parser takes but the server cannot
// work with: a rate that is not a number, a pool of no connections, a
// retention or time-to-live of no time. Each would otherwise start a server
// that misbehaves quietly (NaN as a rate refuses every request).
func (m *Main) checkValues() error {
	var errs []error
	bad := func(flag string, v any, want string) {
		errs = append(errs, fmt.Errorf("-%s %v: %s", flag, v, want))
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{{"rate-per-ip", m.IPLimits.Rate}, {"devices-per-ip", m.IPLimits.DeviceRate}, {"edits-per-ip", m.IPLimits.EditRate}} {
		if math.IsNaN(r.v) || math.IsInf(r.v, 0) {
			bad(r.flag, r.v, "want a number per second (0 for the default, negative for no limit)")
		}
	}
	if m.PostgresConns < 1 {
		bad("postgres-max-conns", m.PostgresConns, "want at least 1")
	}
	if m.Committers < -1 {
		bad("committers", m.Committers, "want -1 (the store's default), 0 or more")
	}
	if m.MaxHellos < 0 {
		bad("max-hellos", m.MaxHellos, "want 1 or more (0 for the default, 128)")
	}
	// -guest-retention is not checked: 0 or less has always meant its
	// default (30 days), as documented, and configurations rely on it.
	for _, d := range []struct {
		flag string
		v    time.Duration
		zero bool // 0 has a meaning
	}{
		{"cache-ttl", m.CacheTTL, false},
		{"user-retention", m.UserRetention, true},
		{"purge-interval", m.PurgeInterval, true},
		{"checkout-ttl", m.CheckoutTTL, false},
		{"webhook-retry-window", m.WebhookWindow, false},
		{"body-timeout", m.IPLimits.BodyTimeout, true},
		{"auth-leeway", m.Auth.Leeway, true},
		{"drain-delay", m.DrainDelay, true},
	} {
		if d.v < 0 || (d.v == 0 && !d.zero) {
			want := "want a positive duration"
			if d.zero {
				want = "want 0 or a positive duration"
			}
			bad(d.flag, d.v, want)
		}
	}
	if strings.TrimSpace(m.RedisPrefix) == "" {
		bad("redis-prefix", fmt.Sprintf("%q", m.RedisPrefix), "want a prefix: the server's keys must not mix with others' in a shared Redis")
	}
	return errors.Join(errs...)
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

// envName finds the environment variable a flag's usage names at its end,
// "... (CARTSYNC_ADDR)".
var envName = regexp.MustCompile(`\((CARTSYNC_[A-Z0-9_]+)\)$`)

// applyEnv sets every flag whose environment variable is set, with the
// flag's own parser: a value it refuses stops the start, naming the
// variable, instead of falling back to the default unnoticed. Flags given
// on the command line are parsed after, and win.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		m := envName.FindStringSubmatch(f.Usage)
		if m == nil {
			return
		}
		v := getenv(m[1])
		if v == "" {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("environment variable %s=%q (as -%s): %w", m[1], v, f.Name, flagValueError(f, err)))
		}
	})
	return errors.Join(errs...)
}

// flagValueError says what a flag wanted instead of the flag package's
// bare "parse error": "not a duration (like 90s, 30m or 720h)".
func flagValueError(f *flag.Flag, err error) error {
	if !errors.Is(err, strconv.ErrSyntax) && !errors.Is(err, strconv.ErrRange) && err.Error() != "parse error" {
		return err
	}
	kind, _ := flag.UnquoteUsage(f)
	switch kind {
	case "duration":
		return errors.New("not a duration (like 90s, 30m or 720h)")
	case "int":
		return errors.New("not a whole number")
	case "float":
		return errors.New("not a number")
	case "":
		return errors.New("not true or false")
	}
	return err
}
