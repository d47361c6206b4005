// Package webui serves the browser side of cartsync: the widget page (a
// go-app page shown in an iframe), its precompressed WebAssembly, embed.js
// for storefronts (at a stable and at a versioned URL, see embed.go), and
// the demo storefront.
package webui

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/app/widget"
)

// Config configures the widget's handler.
type Config struct {
	// WebDir is the folder served at /web/: app.wasm (and its .br and .gz),
	// widget.css, icons, embed.js.
	WebDir string
	// Version is the build's version; the widget's service worker cache
	// changes with it, so a deploy reaches open tabs.
	Version string
	// AllowedOrigins are the storefront origins that may embed the widget.
	AllowedOrigins []string
	// OriginAgentCluster sends Origin-Agent-Cluster: ?1 with the widget
	// page. Chromium then runs the widget in a process of its own even on
	// a same-site storefront (cart.shop.com in shop.com), so that starting
	// its WebAssembly does not block the storefront's main thread
	// (docs/benchmarks.md, cartsync-hostbench -sites same-oac). The widget
	// uses neither document.domain nor memory shared with its host. The
	// program turns it on unless told not to (-origin-agent-cluster).
	OriginAgentCluster bool
	Logger             *slog.Logger
}

// New returns the handler for everything that is not the sync API: mount it
// at "/". The widget page itself is only served at "/" (go-app serves
// registered routes only, and only "/" is precached for offline use).
func New(cfg Config) (http.Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	wasm := filepath.Join(cfg.WebDir, "app.wasm")
	st, err := os.Stat(wasm)
	if err != nil {
		return nil, fmt.Errorf("webui: %w (build it with make wasm)", err)
	}
	sum, err := fileHash(wasm)
	if err != nil {
		return nil, err
	}
	// The allowed origins are baked into the cached page (its CSP) and
	// app.js (the widget's environment): a change must reach returning
	// shoppers, whose service worker serves both from its cache.
	osum := sha256.Sum256([]byte(strings.Join(cfg.AllowedOrigins, ",")))
	sum = sum[:12] + hex.EncodeToString(osum[:])[:6]
	widget.Routes()
	origins := strings.Join(cfg.AllowedOrigins, ",")
	h := &app.Handler{
		Name:        "Cart",
		ShortName:   "Cart",
		Title:       "Cart",
		Description: "Your shopping cart",
		Lang:        "en",
		// Local icons: the defaults live on an outside host, and the
		// service worker's precache fails (so nothing works offline)
		// when one URL cannot be fetched.
		Icon: app.Icon{
			Default:  "/web/icons/icon-192.png",
			Large:    "/web/icons/icon-512.png",
			Maskable: "/web/icons/icon-512.png",
			SVG:      "/web/icons/icon.svg",
		},
		Styles:          []string{"/web/widget.css"},
		BackgroundColor: "#ffffff",
		ThemeColor:      "#1f6feb",
		LoadingLabel:    "Loading cart",
		Env:             map[string]string{"CARTSYNC_ALLOWED_ORIGINS": origins},
		// Version names the service worker's cache: it must change with
		// every build of the wasm, or clients keep the old one forever.
		Version:           cfg.Version + "-" + sum,
		Resources:         webResources{dir: cfg.WebDir},
		WasmContentLength: strconv.FormatInt(st.Size(), 10),
	}
	embed, err := loadEmbed(filepath.Join(cfg.WebDir, "embed.js"))
	if err != nil {
		return nil, err
	}
	frameAncestors := "'self'"
	for _, o := range cfg.AllowedOrigins {
		frameAncestors += " " + o
	}
	mux := http.NewServeMux()
	embed.handle(mux)
	// The wasm_exec.js of the compiler that built app.wasm (make wasm
	// copies it from GOROOT): go-app's own copy may be of another Go.
	if _, err := os.Stat(filepath.Join(cfg.WebDir, "wasm_exec.js")); err == nil {
		mux.HandleFunc("GET /wasm_exec.js", nosniff(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeFile(w, r, filepath.Join(cfg.WebDir, "wasm_exec.js"))
		}))
	}
	// go-app would fetch these from http://<Host header>/web/...: answer
	// them here rather than let a forged Host header choose the origin.
	for _, p := range []string{"/robots.txt", "/sitemap.xml", "/ads.txt"} {
		mux.HandleFunc("GET "+p, func(w http.ResponseWriter, r *http.Request) {
			if p == "/robots.txt" {
				io.WriteString(w, "User-agent: *\nDisallow: /\n")
				return
			}
			http.NotFound(w, r)
		})
	}
	mux.Handle("/", securityHeaders(h, frameAncestors, cfg.OriginAgentCluster))
	return mux, nil
}

// contentSecurityPolicy is the widget page's policy, without
// frame-ancestors. The page loads only its own scripts (wasm_exec.js,
// app.js; go-app emits no inline script), compiles app.wasm
// ('wasm-unsafe-eval'), sets style attributes ('unsafe-inline' styles),
// registers its service worker and manifest, and talks to its own origin
// over fetch and the websocket ('self' covers ws: and wss: to the same
// host). Product images come from the storefronts, over http(s).
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; " +
	"style-src 'self' 'unsafe-inline'; img-src 'self' https: http: data:; connect-src 'self'; " +
	"worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'"

// workerPolicy is the service worker's policy. go-app's worker answers
// every request of the page, product images from the storefronts
// included, by fetching it itself: a worker's fetches fall under its own
// connect-src, which must therefore reach the images' origins.
const workerPolicy = "default-src 'self'; script-src 'self'; connect-src 'self' https: http:; object-src 'none'; base-uri 'self'"

func securityHeaders(next http.Handler, frameAncestors string, originKeyed bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/app-worker.js" {
			w.Header().Set("Content-Security-Policy", workerPolicy)
			w.Header().Set("Referrer-Policy", "no-referrer")
			next.ServeHTTP(w, r)
			return
		}
		// Only the allowed storefronts may frame the widget.
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy+"; frame-ancestors "+frameAncestors)
		if originKeyed {
			w.Header().Set("Origin-Agent-Cluster", "?1")
		}
		w.Header().Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

// nosniff makes browsers take a response for its declared type only.
func nosniff(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next(w, r)
	}
}

func fileHash(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// webResources serves WebDir at /web/, with app.wasm precompressed.
type webResources struct{ dir string }

// Resolve keeps /web/ paths as they are: the files are served here.
func (webResources) Resolve(p string) string {
	if p == "" || p == "/" {
		return "/"
	}
	return "/" + strings.TrimLeft(p, "/")
}

func (res webResources) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rel, ok := strings.CutPrefix(path.Clean(r.URL.Path), "/web/")
	if !ok || rel == "" || strings.HasPrefix(rel, "demo/") || rel == "README.md" {
		http.NotFound(w, r)
		return
	}
	name := filepath.Join(res.dir, filepath.FromSlash(rel))
	if rel == "app.wasm" {
		serveCompressed(w, r, name, "application/wasm")
		return
	}
	http.ServeFile(w, r, name)
}

// serveCompressed serves name, or its .br or .gz sibling when the client
// accepts that encoding and the file exists. go-app does not compress the
// wasm: a precompressed brotli file is about a fifth of the raw size.
func serveCompressed(w http.ResponseWriter, r *http.Request, name, contentType string) {
	w.Header().Set("Vary", "Accept-Encoding")
	w.Header().Set("Content-Type", contentType)
	accept := r.Header.Get("Accept-Encoding")
	for _, enc := range []struct{ token, ext string }{{"br", ".br"}, {"gzip", ".gz"}} {
		if !acceptsEncoding(accept, enc.token) {
			continue
		}
		f, err := os.Open(name + enc.ext)
		if err != nil {
			continue
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			continue
		}
		w.Header().Set("Content-Encoding", enc.token)
		w.Header().Set("Content-Length", strconv.FormatInt(st.Size(), 10))
		if r.Method != http.MethodHead {
			w.WriteHeader(http.StatusOK)
			io.Copy(w, f)
		}
		return
	}
	f, err := os.Open(name)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "cannot read the widget", http.StatusInternalServerError)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		http.Error(w, "cannot read the widget", http.StatusInternalServerError)
		return
	}
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// acceptsEncoding reports whether an Accept-Encoding header allows token
// (present without q=0).
func acceptsEncoding(header, token string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), token) {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
