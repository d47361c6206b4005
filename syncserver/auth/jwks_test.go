package auth

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cartsync/cartsync/shared/protocol"
)

// jwksServer serves a key set that tests replace, counting fetches.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	doc     []byte
	status  int
}

func newJWKSServer(tb testing.TB, doc []byte) *jwksServer {
	tb.Helper()
	s := &jwksServer{doc: doc, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(doc)
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(doc []byte, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.doc, s.status = doc, status
}

// TestJWKSURLRotation replaces the key on the JWKS host: a token naming the
// new key id triggers one refresh, and a flood of unknown key ids costs the
// host at most one fetch a minute.
func TestJWKSURLRotation(t *testing.T) {
	k := keys()
	srv := newJWKSServer(t, jwksDoc(t, rsaJWK(&k.rsaA.PublicKey, "k1")))
	clk := newClock()
	v := newVerifier(t, Config{JWKSURL: srv.URL, HTTPClient: srv.Client(), Now: clk.Now, Leeway: time.Hour})

	verify := func(t *testing.T, tok string, wantCode protocol.ErrorCode) {
		t.Helper()
		got, err := v.VerifyUser(t.Context(), tok)
		if wantCode != "" {
			checkRefusal(t, err, wantCode)
			return
		}
		if err != nil || got != "user-1" {
			t.Fatalf("VerifyUser = %q, %v; want user-1", got, err)
		}
	}
	wantFetches := func(t *testing.T, want int64) {
		t.Helper()
		if got := srv.fetches.Load(); got != want {
			t.Fatalf("fetches = %d, want %d", got, want)
		}
	}
	flood := func(t *testing.T, n int) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			tok := signWith(t, k.rsaB, AlgRS256, fmt.Sprintf("forged-%d", i), tokenClaims(nil))
			wg.Go(func() {
				if _, err := v.VerifyUser(t.Context(), tok); err == nil {
					t.Errorf("token with forged kid %d accepted", i)
				}
			})
		}
		wg.Wait()
	}
	k1 := signWith(t, k.rsaA, AlgRS256, "k1", tokenClaims(nil))
	k2 := signWith(t, k.rsaB, AlgRS256, "k2", tokenClaims(nil))

	steps := []struct {
		name        string
		do          func(t *testing.T)
		wantFetches int64
	}{
		{"fetched at start", func(t *testing.T) { verify(t, k1, "") }, 1},
		{"rotated on the host", func(t *testing.T) {
			srv.serve(jwksDoc(t, rsaJWK(&k.rsaB.PublicKey, "k2")), http.StatusOK)
		}, 1},
		{"new kid within a minute of the last fetch", func(t *testing.T) { verify(t, k2, protocol.ErrUnauthorized) }, 1},
		{"new kid a minute later triggers one refresh", func(t *testing.T) {
			clk.Add(minUnknownKidGap)
			verify(t, k2, "")
			verify(t, k2, "")
		}, 2},
		{"old key is gone", func(t *testing.T) { verify(t, k1, protocol.ErrUnauthorized) }, 2},
		{"flood right after a fetch", func(t *testing.T) { flood(t, 100) }, 2},
		{"flood a minute later: one fetch", func(t *testing.T) {
			clk.Add(minUnknownKidGap + time.Second)
			flood(t, 100)
		}, 3},
		{"flood half a minute later: none", func(t *testing.T) {
			clk.Add(30 * time.Second)
			flood(t, 100)
		}, 3},
		{"failed refresh keeps the keys", func(t *testing.T) {
			srv.serve([]byte("oops"), http.StatusInternalServerError)
			clk.Add(minUnknownKidGap)
			flood(t, 10)
			verify(t, k2, "")
		}, 4},
		{"unreadable key set keeps the keys", func(t *testing.T) {
			srv.serve(jwksDoc(t), http.StatusOK)
			clk.Add(minUnknownKidGap)
			flood(t, 10)
			verify(t, k2, "")
		}, 5},
	}
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) {
			s.do(t)
			wantFetches(t, s.wantFetches)
		}) {
			return
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestJWKSPeriodicRefresh checks the background refresh under a fake clock.
func TestJWKSPeriodicRefresh(t *testing.T) {
	k := keys()
	docA := jwksDoc(t, rsaJWK(&k.rsaA.PublicKey, "k1"))
	docB := jwksDoc(t, rsaJWK(&k.rsaB.PublicKey, "k2"))
	synctest.Test(t, func(t *testing.T) {
		var fetches atomic.Int64
		var doc atomic.Pointer[[]byte]
		doc.Store(&docA)
		client := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			fetches.Add(1)
			return &http.Response{
				StatusCode: http.StatusOK, Status: "200 OK", Header: make(http.Header),
				Body: io.NopCloser(bytes.NewReader(*doc.Load())), Request: r,
			}, nil
		})}
		v, err := New(t.Context(), Config{JWKSURL: "https://shop.example/.well-known/jwks.json", HTTPClient: client, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		claims := tokenClaims(map[string]any{"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
		k2 := signWith(t, k.rsaB, AlgRS256, "k2", claims)

		doc.Store(&docB)
		if _, err := v.VerifyUser(t.Context(), k2); err == nil {
			t.Fatal("new key accepted before any refresh")
		}
		time.Sleep(refreshInterval - time.Second)
		synctest.Wait()
		if got := fetches.Load(); got != 1 {
			t.Fatalf("fetches before the interval = %d, want 1", got)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if got := fetches.Load(); got != 2 {
			t.Fatalf("fetches after the interval = %d, want 2", got)
		}
		if _, err := v.VerifyUser(t.Context(), k2); err != nil {
			t.Fatalf("new key after the refresh: %v", err)
		}
		time.Sleep(3 * refreshInterval)
		synctest.Wait()
		if got := fetches.Load(); got != 5 {
			t.Fatalf("fetches after four intervals = %d, want 5", got)
		}
		v.Close()
		time.Sleep(3 * refreshInterval)
		if got := fetches.Load(); got != 5 {
			t.Fatalf("fetches after Close = %d, want 5", got)
		}
	})
}
