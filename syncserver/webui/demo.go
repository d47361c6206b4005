package webui

import (
	"bytes"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Demo serves the demo storefront in webDir/demo on its own origin, with
// {{CART_SERVER}} in its HTML replaced by the cart server's base URL, so
// that the cross-origin embedding is what is shown and tested.
func Demo(webDir, cartServer string) http.Handler {
	dir := filepath.Join(webDir, "demo")
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
