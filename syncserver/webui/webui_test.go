package webui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func webDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"app.wasm":           "\x00asm raw wasm bytes",
		"app.wasm.br":        "brotli bytes",
		"embed.js":           "/* embed */",
		"wasm_exec.js":       "/* exec */",
		"widget.css":         "body{}",
		"demo/index.html":    `<script src="{{CART_SERVER}}/embed.js"></script>`,
		"icons/icon-192.png": "png",
		"icons/icon-512.png": "png",
		"icons/icon.svg":     "<svg/>",
		"README.md":          "# web/",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(files["app.wasm"]))
	zw.Close()
	os.WriteFile(filepath.Join(dir, "app.wasm.gz"), gz.Bytes(), 0o644)
	return dir
}

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(r *http.Response) string { b, _ := io.ReadAll(r.Body); return string(b) }

func TestWasmIsServedPrecompressed(t *testing.T) {
	h, err := New(Config{WebDir: webDir(t), Version: "test", AllowedOrigins: []string{"https://shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, accept, encoding, body string
	}{
		{"brotli preferred", "gzip, deflate, br", "br", "brotli bytes"},
		{"gzip", "gzip", "gzip", ""},
		{"identity", "", "", "\x00asm raw wasm bytes"},
		{"brotli refused", "br;q=0, gzip", "gzip", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, h, "/web/app.wasm", map[string]string{"Accept-Encoding": tt.accept})
			if r.StatusCode != 200 || r.Header.Get("Content-Type") != "application/wasm" || r.Header.Get("Content-Encoding") != tt.encoding {
				t.Fatalf("status %d, type %q, encoding %q; want 200 application/wasm %q", r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Content-Encoding"), tt.encoding)
			}
			if !strings.Contains(r.Header.Get("Vary"), "Accept-Encoding") {
				t.Fatalf("no Vary: Accept-Encoding")
			}
			if b := body(r); tt.body != "" && b != tt.body {
				t.Fatalf("body %q, want %q", b, tt.body)
			}
		})
	}
}

// TestOriginAgentCluster: with OriginAgentCluster the widget page, and
// only the page, asks for an origin-keyed agent cluster.
func TestOriginAgentCluster(t *testing.T) {
	h, err := New(Config{WebDir: webDir(t), Version: "test", AllowedOrigins: []string{"https://shop.example"}, OriginAgentCluster: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{{"/", "?1"}, {"/app-worker.js", ""}, {"/embed.js", ""}} {
		resp := get(t, h, tt.path, nil)
		if got := resp.Header.Get("Origin-Agent-Cluster"); resp.StatusCode != 200 || got != tt.want {
			t.Errorf("GET %s = %d, Origin-Agent-Cluster %q, want 200 and %q", tt.path, resp.StatusCode, got, tt.want)
		}
	}
}

func TestPageAndAssets(t *testing.T) {
	h, err := New(Config{WebDir: webDir(t), Version: "test", AllowedOrigins: []string{"https://shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	page := get(t, h, "/", nil)
	if page.StatusCode != 200 {
		t.Fatalf("GET / = %d", page.StatusCode)
	}
	if csp := page.Header.Get("Content-Security-Policy"); !strings.HasSuffix(csp, "; frame-ancestors 'self' https://shop.example") {
		t.Fatalf("CSP = %q", csp)
	}
	if oac := page.Header.Get("Origin-Agent-Cluster"); oac != "" {
		t.Errorf("Origin-Agent-Cluster = %q without OriginAgentCluster, want none", oac)
	}
	html := body(page)
	for _, want := range []string{"/web/icons/icon-192.png", "/web/widget.css", "/app.js"} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(html, "githubusercontent") {
		t.Errorf("page still points at go-app's default icons on an outside host")
	}
	worker := body(get(t, h, "/app-worker.js", nil))
	for _, want := range []string{"/web/app.wasm", "/web/icons/icon-192.png", "/web/widget.css"} {
		if !strings.Contains(worker, want) {
			t.Errorf("service worker does not precache %q", want)
		}
	}
	if r := get(t, h, "/embed.js", nil); r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") || body(r) != "/* embed */" {
		t.Errorf("GET /embed.js = %d %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	if r := get(t, h, "/wasm_exec.js", nil); body(r) != "/* exec */" {
		t.Errorf("/wasm_exec.js is not the compiler's copy from the web folder")
	}
	if r := get(t, h, "/robots.txt", map[string]string{"Host": "evil.example"}); !strings.Contains(body(r), "Disallow") {
		t.Errorf("robots.txt not answered locally")
	}
	if r := get(t, h, "/web/demo/index.html", nil); r.StatusCode != 404 {
		t.Errorf("demo files served on the cart origin: %d", r.StatusCode)
	}
	if r := get(t, h, "/web/README.md", nil); r.StatusCode != 404 {
		t.Errorf("the web folder's README served: %d", r.StatusCode)
	}
	if r := get(t, h, "/elsewhere", nil); r.StatusCode != 404 {
		t.Errorf("unregistered route = %d, want 404", r.StatusCode)
	}
}

func TestVersionFollowsTheWasm(t *testing.T) {
	dir := webDir(t)
	h1, _ := New(Config{WebDir: dir, Version: "v"})
	os.WriteFile(filepath.Join(dir, "app.wasm"), []byte("\x00asm another build"), 0o644)
	h2, _ := New(Config{WebDir: dir, Version: "v"})
	w1, w2 := body(get(t, h1, "/app-worker.js", nil)), body(get(t, h2, "/app-worker.js", nil))
	if w1 == w2 {
		t.Fatal("a new wasm with the same build version leaves the service worker unchanged: clients would keep the old wasm")
	}
}

func TestMissingWasmIsAnError(t *testing.T) {
	if _, err := New(Config{WebDir: t.TempDir()}); err == nil {
		t.Fatal("New without app.wasm succeeded")
	}
}

func TestDemoReplacesCartServer(t *testing.T) {
	h := Demo(webDir(t), "http://127.0.0.1:8080", nil)
	r := get(t, h, "/", nil)
	if got := body(r); got != `<script src="http://127.0.0.1:8080/embed.js"></script>` {
		t.Fatalf("demo page = %q", got)
	}
}

func TestVersionFollowsTheAllowedOrigins(t *testing.T) {
	dir := webDir(t)
	h1, _ := New(Config{WebDir: dir, Version: "v", AllowedOrigins: []string{"https://a.example"}})
	h2, _ := New(Config{WebDir: dir, Version: "v", AllowedOrigins: []string{"https://a.example", "https://b.example"}})
	if body(get(t, h1, "/app-worker.js", nil)) == body(get(t, h2, "/app-worker.js", nil)) {
		t.Fatal("a new allowed origin leaves the service worker unchanged: returning shoppers would keep the old page and CSP")
	}
}

// TestFullContentSecurityPolicy: the widget page gets a whole policy, not
// only frame-ancestors, and its scripts are never sniffed.
func TestFullContentSecurityPolicy(t *testing.T) {
	h, err := New(Config{WebDir: webDir(t), Version: "test", AllowedOrigins: []string{"https://shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	csp := get(t, h, "/", nil).Header.Get("Content-Security-Policy")
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{
		"default-src":     "'self'",
		"script-src":      "'self' 'wasm-unsafe-eval'",
		"connect-src":     "'self'",
		"object-src":      "'none'",
		"base-uri":        "'self'",
		"frame-ancestors": "'self' https://shop.example",
	} {
		if got := directives[name]; got != want {
			t.Errorf("%s = %q, want %q (policy %q)", name, got, want, csp)
		}
	}
	for _, name := range []string{"style-src", "img-src", "worker-src", "manifest-src"} {
		if !strings.Contains(directives[name], "'self'") {
			t.Errorf("%s = %q, want it to allow 'self'", name, directives[name])
		}
	}
	for _, p := range []string{"/", "/app.js", "/app-worker.js", "/embed.js", "/wasm_exec.js", "/web/widget.css"} {
		if got := get(t, h, p, nil).Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", p, got)
		}
	}
}

// TestWorkerMayFetchProductImages: go-app's service worker fetches every
// request of the page itself, product images from the storefronts
// included; its own policy must let it, or no image ever shows.
func TestWorkerMayFetchProductImages(t *testing.T) {
	h, err := New(Config{WebDir: webDir(t), Version: "test", AllowedOrigins: []string{"https://shop.example"}})
	if err != nil {
		t.Fatal(err)
	}
	csp := get(t, h, "/app-worker.js", nil).Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "connect-src 'self' https: http:") || !strings.Contains(csp, "object-src 'none'") {
		t.Fatalf("worker policy %q: want connect-src to reach http(s) images and nothing else loosened", csp)
	}
	if page := get(t, h, "/", nil).Header.Get("Content-Security-Policy"); !strings.Contains(page, "connect-src 'self';") {
		t.Fatalf("the page's own policy was loosened too: %q", page)
	}
}
