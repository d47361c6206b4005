package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/cartsync/cartsync/shared/logkey"
)

// JWKS refresh timing.
const (
	// refreshInterval is how often the key set is fetched in the background.
	refreshInterval = 10 * time.Minute
	// minUnknownKidGap is how long after any fetch a token naming an
	// unknown key id may cause another: a flood of forged key ids costs
	// the JWKS host at most one request a minute.
	minUnknownKidGap = time.Minute
	// fetchTimeout bounds one fetch.
	fetchTimeout = 10 * time.Second
	// maxJWKSBytes bounds a fetched key set.
	maxJWKSBytes = 1 << 20
)

// remoteKeys is a key set fetched from a JWKS URL.
type remoteKeys struct {
	url    string
	client *http.Client
	log    *slog.Logger
	now    func() time.Time

	keys atomic.Pointer[[]publicKey]

	// sem is held while fetching; it guards last.
	sem chan struct{}
	// last is when the last fetch started, by now.
	last time.Time
}

func newRemoteKeys(rawURL string, client *http.Client, log *slog.Logger, now func() time.Time) (*remoteKeys, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, errors.New("JWKS URL must be an absolute http(s) URL")
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		log.Warn("JWKS URL is not HTTPS: anyone on the path can substitute keys", logkey.JWKSURL, rawURL)
	}
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	return &remoteKeys{url: rawURL, client: client, log: log, now: now, sem: make(chan struct{}, 1)}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// load returns the current keys.
func (r *remoteKeys) load() []publicKey {
	if p := r.keys.Load(); p != nil {
		return *p
	}
	return nil
}

func (r *remoteKeys) lock(ctx context.Context) bool {
	select {
	case r.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *remoteKeys) unlock() { <-r.sem }

// fetch downloads the key set and installs it; on failure the keys in use
// stay. The caller holds sem.
func (r *remoteKeys) fetch(ctx context.Context) error {
	r.last = r.now()
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch JWKS: status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("fetch JWKS: larger than %d bytes", maxJWKSBytes)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("fetch JWKS: %w", err)
	}
	for _, s := range skipped {
		r.log.Warn("JWKS key skipped", logkey.JWKSURL, r.url, logkey.Reason, s)
	}
	if len(keys) == 0 {
		return errors.New("fetch JWKS: no usable Ed25519 or RSA signing key")
	}
	r.keys.Store(&keys)
	r.log.Debug("JWKS loaded", logkey.JWKSURL, r.url, logkey.Keys, len(keys))
	return nil
}

// refreshForUnknownKid fetches the key set unless a fetch started less than
// minUnknownKidGap ago. Callers that arrive during a fetch wait for it and
// then look again, so a rotation costs one fetch however many users present
// the new key id at once.
func (r *remoteKeys) refreshForUnknownKid(ctx context.Context) {
	if !r.lock(ctx) {
		return
	}
	defer r.unlock()
	if r.now().Sub(r.last) < minUnknownKidGap {
		return
	}
	// The fetch serves every waiting caller: don't let this one's
	// cancellation abort it.
	if err := r.fetch(context.WithoutCancel(ctx)); err != nil {
		r.log.Warn("refresh JWKS for an unknown key id", logkey.JWKSURL, r.url, logkey.Err, err)
	}
}

// run refreshes the key set every refreshInterval until ctx is done.
func (r *remoteKeys) run(ctx context.Context) {
	t := time.NewTicker(refreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !r.lock(ctx) {
			return
		}
		err := r.fetch(ctx)
		r.unlock()
		if err != nil && ctx.Err() == nil {
			r.log.Warn("refresh JWKS; keeping the keys in use", logkey.JWKSURL, r.url, logkey.Err, err)
		}
	}
}
