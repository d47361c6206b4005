package webui

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// TokenSigner signs user tokens, as a storefront's backend does for its
// logged-in users.
type TokenSigner interface {
	Sign(sub string, ttl time.Duration, aud string) (string, error)
}

// DemoUsers are the demo storefront's users.
var DemoUsers = []string{"alice", "bob", "carol"}

// Demo serves the demo storefront in webDir/demo on its own origin, with
// {{CART_SERVER}} in its HTML replaced by the cart server's base URL, so
// that the cross-origin embedding is what is shown and tested. With a
// signer it also plays the storefront's backend for its demo users:
// GET /demo-token?user=alice answers {"user", "token"}, a token valid for
// ten minutes (or ?ttl=30s).
func Demo(webDir, cartServer string, signer TokenSigner) http.Handler {
	dir := filepath.Join(webDir, "demo")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/demo-token" {
			demoToken(w, r, signer)
			return
		}
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
