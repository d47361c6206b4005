package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

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
