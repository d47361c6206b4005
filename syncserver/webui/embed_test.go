package webui

import (
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
)

// decode undoes the response's Content-Encoding.
func decode(t *testing.T, r *http.Response) string {
	t.Helper()
	var rd io.Reader = r.Body
	switch r.Header.Get("Content-Encoding") {
	case "br":
		rd = brotli.NewReader(r.Body)
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			t.Fatal(err)
		}
		rd = zr
	case "":
	default:
		t.Fatalf("unexpected Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}
	b, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type embedInfo struct {
	URL       string `json:"url"`
	Integrity string `json:"integrity"`
}

func embedHandler(t *testing.T, script string) (http.Handler, embedInfo) {
	t.Helper()
	dir := webDir(t)
	if err := os.WriteFile(filepath.Join(dir, "embed.js"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{WebDir: dir, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	r := get(t, h, "/embed.json", nil)
	var info embedInfo
	if err := json.NewDecoder(r.Body).Decode(&info); err != nil || r.StatusCode != 200 {
		t.Fatalf("GET /embed.json = %d, %v", r.StatusCode, err)
	}
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("/embed.json: Access-Control-Allow-Origin %q, want *", got)
	}
	return h, info
}

func TestEmbedServedCompressedAtBothURLs(t *testing.T) {
	script := strings.Repeat("/* cartsync embed */ console.log('x');\n", 50)
	h, info := embedHandler(t, script)
	if !regexp.MustCompile(`^/embed\.[0-9a-f]{16}\.js$`).MatchString(info.URL) {
		t.Fatalf("versioned URL %q, want /embed.<16 hex digits>.js", info.URL)
	}
	sum := sha512.Sum384([]byte(script))
	if want := "sha384-" + base64.StdEncoding.EncodeToString(sum[:]); info.Integrity != want {
		t.Fatalf("integrity %q, want %q", info.Integrity, want)
	}
	tests := []struct {
		name, path, accept, encoding, cache string
	}{
		{"stable, brotli", "/embed.js", "gzip, deflate, br", "br", embedStableCache},
		{"stable, gzip", "/embed.js", "gzip", "gzip", embedStableCache},
		{"stable, identity", "/embed.js", "", "", embedStableCache},
		{"stable, brotli refused", "/embed.js", "br;q=0, gzip", "gzip", embedStableCache},
		{"versioned, brotli", info.URL, "br", "br", embedImmutableCache},
		{"versioned, gzip", info.URL, "gzip;q=1.0", "gzip", embedImmutableCache},
		{"versioned, identity", info.URL, "identity", "", embedImmutableCache},
	}
	etags := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, h, tt.path, map[string]string{"Accept-Encoding": tt.accept})
			if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != tt.encoding {
				t.Fatalf("status %d, encoding %q; want 200, %q", r.StatusCode, r.Header.Get("Content-Encoding"), tt.encoding)
			}
			for k, want := range map[string]string{
				"Content-Type":                 "text/javascript; charset=utf-8",
				"Cache-Control":                tt.cache,
				"Vary":                         "Accept-Encoding",
				"X-Content-Type-Options":       "nosniff",
				"Access-Control-Allow-Origin":  "*",
				"Cross-Origin-Resource-Policy": "cross-origin",
			} {
				if got := r.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if got := decode(t, r); got != script {
				t.Fatalf("decoded body differs from embed.js (%d bytes, want %d)", len(got), len(script))
			}
			if tt.encoding != "" && r.ContentLength >= int64(len(script)) {
				t.Errorf("Content-Length %d: not smaller than the raw %d bytes", r.ContentLength, len(script))
			}
			etag := r.Header.Get("ETag")
			if prev, ok := etags[tt.encoding]; ok && prev != etag {
				t.Errorf("ETag %q differs from %q for the same bytes", etag, prev)
			}
			etags[tt.encoding] = etag
			if nm := get(t, h, tt.path, map[string]string{"Accept-Encoding": tt.accept, "If-None-Match": etag}); nm.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation with If-None-Match %s = %d, want 304", etag, nm.StatusCode)
			}
		})
	}
	if len(etags) == 3 && (etags["br"] == etags["gzip"] || etags["br"] == etags[""]) {
		t.Errorf("one ETag for several encodings: %v", etags)
	}
	if r := get(t, h, "/embed.js", nil); !strings.Contains(r.Header.Get("Link"), "<"+info.URL+">") {
		t.Errorf("/embed.js Link %q, want the versioned URL", r.Header.Get("Link"))
	}
}

func TestEmbedVersionedURLFollowsContent(t *testing.T) {
	h1, a := embedHandler(t, "/* release 1 */")
	_, b := embedHandler(t, "/* release 2 */")
	if a.URL == b.URL || a.Integrity == b.Integrity {
		t.Fatalf("two releases, one versioned URL or integrity: %+v %+v", a, b)
	}
	// A server serves its own release only: an old pinned URL is a 404,
	// never other bytes (which the integrity check would refuse anyway).
	if r := get(t, h1, b.URL, nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("another release's URL = %d, want 404", r.StatusCode)
	}
	if r := get(t, h1, "/embed.0000000000000000.js", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown version = %d, want 404", r.StatusCode)
	}
	if got := body(get(t, h1, a.URL, nil)); got != "/* release 1 */" {
		t.Errorf("versioned URL serves %q", got)
	}
}

func TestEmbedHead(t *testing.T) {
	h, info := embedHandler(t, "/* embed */")
	req, _ := http.NewRequest("HEAD", info.URL, nil)
	req.Header.Set("Accept-Encoding", "br")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "br" || rec.Body.Len() != 0 {
		t.Fatalf("HEAD = %d, encoding %q, %d body bytes", rec.Code, rec.Header().Get("Content-Encoding"), rec.Body.Len())
	}
}

func TestMissingEmbedIsAnError(t *testing.T) {
	dir := webDir(t)
	os.Remove(filepath.Join(dir, "embed.js"))
	if _, err := New(Config{WebDir: dir}); err == nil {
		t.Fatal("New without embed.js succeeded")
	}
}
