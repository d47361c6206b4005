package webui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cartsync/cartsync/syncserver/webhook"
)

// The demo storefront: its pages (demo/ in the web folder, from assets/demo) on their own origin, and the
// storefront's own backend behind them. It is a demonstration, never for
// production: it hands anyone a token for its demo users, and its order,
// admin and webhook pages have no login.
//
// Its backend routes, all on the demo's origin:
//
//	GET  /demo-token?user=alice         a user token for a demo user
//	GET  /demo/catalog                  the catalog, as the shop page shows it
//	GET  /demo/checkout/{id}            redeem: the checkout as the cart server has it
//	POST /demo/checkout/{id}/place      place the order: complete the checkout
//	POST /demo/checkout/{id}/cancel     cancel the checkout
//	GET  /demo/admin/items              the catalog, for the admin page
//	POST /demo/admin/items              change one item's price, stock or sellable
//	POST /demo/webhooks                 receive a signed webhook delivery
//	GET  /demo/webhooks.json            the deliveries received, newest first
//
// The browser calls them on its own origin; the backend calls the cart
// server's backend API, server to server, with DemoConfig.APIKey.

// TokenSigner signs user tokens, as a storefront's backend does for its
// logged-in users.
type TokenSigner interface {
	Sign(sub string, ttl time.Duration, aud string) (string, error)
}

// DemoUsers are the demo storefront's users.
var DemoUsers = []string{"alice", "bob", "carol"}

// DemoConfig configures the demo storefront (NewDemo).
type DemoConfig struct {
	// WebDir is the folder whose demo/ holds the storefront's pages.
	WebDir string
	// CartServer is the cart server's base URL, such as
	// http://127.0.0.1:8080: the pages embed the widget from it and the
	// demo's backend calls its backend API there.
	CartServer string
	// Signer signs the demo users' tokens (GET /demo-token); nil signs
	// none.
	Signer TokenSigner
	// APIKey opens the cart server's backend API (-api-keys). Without it
	// the checkout, catalog and admin routes answer 503.
	APIKey string
	// WebhookSecret verifies the deliveries to POST /demo/webhooks
	// ("whsec_" and base64, as the cart server's -webhook-secrets).
	// Without it every delivery is refused, and listed as not verified.
	WebhookSecret string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// demo is the demo storefront's backend.
type demo struct {
	cfg   DemoConfig
	log   *slog.Logger
	api   *backendClient // nil without an API key
	hooks webhookLog
	// orders numbers the placed orders: DEMO-1042, DEMO-1043, ...
	orders atomic.Int64
	// selling makes one order's stock update at a time: each reads the
	// catalog's stock and writes it back lowered.
	selling sync.Mutex
	// now is the clock the webhook timestamps are checked against.
	now func() time.Time
}

// firstOrder is the number of the first order placed.
const firstOrder = 1042

// NewDemo returns the demo storefront's handler: mount it at "/" of its
// own origin. It fails when CartServer is not an http(s) URL while there
// is an API key to use there, or when WebhookSecret is not a valid secret.
func NewDemo(cfg DemoConfig) (http.Handler, error) {
	d := &demo{cfg: cfg, log: cfg.Logger, now: time.Now}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.orders.Store(firstOrder - 1)
	if cfg.APIKey != "" {
		api, err := newBackendClient(cfg.CartServer, cfg.APIKey)
		if err != nil {
			return nil, err
		}
		d.api = api
	}
	if cfg.WebhookSecret != "" {
		// Sign reads the secret as Verify does: a bad one fails here,
		// not at the first delivery.
		if _, err := webhook.Sign([]string{cfg.WebhookSecret}, "check", time.Now(), nil); err != nil {
			return nil, fmt.Errorf("demo storefront: webhook secret: %w", err)
		}
	}
	// The state-changing routes are called by the demo's own pages only.
	same := http.NewCrossOriginProtection()
	mux := http.NewServeMux()
	mux.HandleFunc("/demo-token", func(w http.ResponseWriter, r *http.Request) { demoToken(w, r, cfg.Signer) })
	mux.HandleFunc("GET /demo/catalog", d.serveCatalog)
	mux.HandleFunc("GET /demo/checkout/{id}", d.serveRedeem)
	mux.Handle("POST /demo/checkout/{id}/place", same.Handler(http.HandlerFunc(d.servePlace)))
	mux.Handle("POST /demo/checkout/{id}/cancel", same.Handler(http.HandlerFunc(d.serveCancel)))
	mux.HandleFunc("GET /demo/admin/items", d.serveCatalog)
	mux.Handle("POST /demo/admin/items", same.Handler(http.HandlerFunc(d.serveItemChange)))
	mux.HandleFunc("POST /demo/webhooks", d.serveWebhook)
	mux.HandleFunc("GET /demo/webhooks.json", d.serveWebhookList)
	mux.Handle("/", demoFiles(filepath.Join(cfg.WebDir, "demo"), cfg.CartServer))
	return mux, nil
}

// Demo serves the demo storefront in webDir/demo on its own origin, with
// {{CART_SERVER}} in its HTML replaced by the cart server's base URL, so
// that the cross-origin embedding is what is shown and tested. With a
// signer it also plays the storefront's backend for its demo users:
// GET /demo-token?user=alice answers {"user", "token"}, a token valid for
// ten minutes (or ?ttl=30s). It is NewDemo without an API key or a
// webhook secret.
func Demo(webDir, cartServer string, signer TokenSigner) http.Handler {
	h, err := NewDemo(DemoConfig{WebDir: webDir, CartServer: cartServer, Signer: signer})
	if err != nil {
		panic(err) // without an API key or a secret there is nothing to refuse
	}
	return h
}

// demoFiles serves the pages in dir, with {{CART_SERVER}} in the HTML
// replaced by cartServer.
func demoFiles(dir, cartServer string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean(r.URL.Path)
		if p == "/" {
			p = "/index.html"
		}
		name := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
		if !strings.HasSuffix(name, ".html") {
			http.ServeFile(w, r, name)
			return
		}
		b, err := os.ReadFile(name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Write(bytes.ReplaceAll(b, []byte("{{CART_SERVER}}"), []byte(cartServer)))
	})
}

func demoToken(w http.ResponseWriter, r *http.Request, signer TokenSigner) {
	user := r.URL.Query().Get("user")
	if signer == nil || !slices.Contains(DemoUsers, user) {
		http.Error(w, "no such demo user", http.StatusNotFound)
		return
	}
	ttl := 10 * time.Minute
	if d, err := time.ParseDuration(r.URL.Query().Get("ttl")); err == nil && d > 0 && d <= time.Hour {
		ttl = d
	}
	tok, err := signer.Sign(user, ttl, "")
	if err != nil {
		http.Error(w, "cannot sign", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]string{"user": user, "token": tok})
}

// demoError is the body of the demo backend's errors, shaped like the cart
// server's: {"error": {"code", "message"}}.
type demoError struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeDemoJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeDemoError(w http.ResponseWriter, status int, code, format string, args ...any) {
	writeDemoJSON(w, status, demoError{Error: errorBody{Code: code, Message: fmt.Sprintf(format, args...)}})
}

// httpURL reports whether s is an absolute http or https URL.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
