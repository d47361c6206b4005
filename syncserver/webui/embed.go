package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/andybalholm/brotli"
)

// embed.js is served at two URLs:
//
//	/embed.js           the current release, fresh for 5 minutes:
//	                    storefronts that load it follow the cart server's
//	                    updates; then usable stale for 30 days while the
//	                    browser revalidates it in the background, so that a
//	                    returning shopper's page has it even when the cart
//	                    server cannot be reached
//	/embed.HASH.js      the same bytes under a name that changes with them,
//	                    cached for a year (immutable): for pages that pin
//	                    it with Subresource Integrity
//
// /embed.json names the current versioned URL and its integrity value. All
// three are public and sent with Access-Control-Allow-Origin: *, which a
// <script crossorigin integrity=...> needs.
const (
	embedStableCache    = "public, max-age=300, stale-while-revalidate=2592000"
	embedImmutableCache = "public, max-age=31536000, immutable"
)

// embedScript is embed.js as read at start, with its brotli and gzip forms
// (it is small: compressing it once costs nothing and keeps the three
// forms and the digest in step, whatever is on disk later).
type embedScript struct {
	raw, br, gz []byte
	// hash names the versioned URL: the first 16 hex digits of the
	// SHA-384 of raw.
	hash string
	// integrity is the value of a <script integrity> attribute for raw.
	integrity string
	modTime   time.Time
}

func loadEmbed(name string) (*embedScript, error) {
	raw, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	st, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("webui: %w", err)
	}
	sum := sha512.Sum384(raw)
	e := &embedScript{
		raw:       raw,
		hash:      hex.EncodeToString(sum[:8]),
		integrity: "sha384-" + base64.StdEncoding.EncodeToString(sum[:]),
		modTime:   st.ModTime(),
	}
	var br bytes.Buffer
	bw := brotli.NewWriterLevel(&br, brotli.BestCompression)
	bw.Write(raw)
	if err := bw.Close(); err != nil {
		return nil, fmt.Errorf("webui: compress embed.js: %w", err)
	}
	var gz bytes.Buffer
	gw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	gw.Write(raw)
	if err := gw.Close(); err != nil {
		return nil, fmt.Errorf("webui: compress embed.js: %w", err)
	}
	e.br, e.gz = br.Bytes(), gz.Bytes()
	return e, nil
}

// path is the versioned URL's path.
func (e *embedScript) path() string { return "/embed." + e.hash + ".js" }

// handle registers the three routes on mux.
func (e *embedScript) handle(mux *http.ServeMux) {
	mux.HandleFunc("GET /embed.js", func(w http.ResponseWriter, r *http.Request) {
		// The versioned URL of this very content, for tools and people
		// looking for what to pin.
		w.Header().Set("Link", "<"+e.path()+`>; rel="alternate"; type="text/javascript"`)
		e.serve(w, r, embedStableCache)
	})
	mux.HandleFunc("GET "+e.path(), func(w http.ResponseWriter, r *http.Request) {
		e.serve(w, r, embedImmutableCache)
	})
	info, _ := json.Marshal(struct {
		URL       string `json:"url"`
		Integrity string `json:"integrity"`
	}{e.path(), e.integrity})
	info = append(info, '\n')
	mux.HandleFunc("GET /embed.json", func(w http.ResponseWriter, r *http.Request) {
		publicHeaders(w)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "", e.modTime, bytes.NewReader(info))
	})
}

// serve answers with the brotli, gzip or raw bytes, as the client accepts;
// each encoding has its own ETag, so a revalidation is a 304.
func (e *embedScript) serve(w http.ResponseWriter, r *http.Request, cacheControl string) {
	publicHeaders(w)
	h := w.Header()
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("Cache-Control", cacheControl)
	h.Set("Vary", "Accept-Encoding")
	body, tag := e.raw, e.hash
	accept := r.Header.Get("Accept-Encoding")
	switch {
	case acceptsEncoding(accept, "br"):
		body, tag = e.br, e.hash+"-br"
		h.Set("Content-Encoding", "br")
	case acceptsEncoding(accept, "gzip"):
		body, tag = e.gz, e.hash+"-gz"
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", `"`+tag+`"`)
	http.ServeContent(w, r, "", e.modTime, bytes.NewReader(body))
}

// publicHeaders marks a response any page may load, with or without CORS
// (a script tag with integrity is a CORS request).
func publicHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
}
