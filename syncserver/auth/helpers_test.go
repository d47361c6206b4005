package auth

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/protocol"
)

// TestMain fails the run if a refresher goroutine outlives its test.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func checkLeaks() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		if !bytes.Contains(buf, []byte("(*remoteKeys).run")) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("leaked JWKS refresher goroutines:\n%s", buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	// t0 is the time every test starts at.
	t0         = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	testSecret = []byte("test-secret-0123456789abcdefghijklmnop")
	quiet      = slog.New(slog.DiscardHandler)
)

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testKeys are generated once per run: RSA generation is slow.
type testKeys struct {
	edA, edB   ed25519.PrivateKey
	rsaA, rsaB *rsa.PrivateKey
}

var keys = sync.OnceValue(func() testKeys {
	var k testKeys
	var err error
	if _, k.edA, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	if _, k.edB, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	if k.rsaA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsaB, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	return k
})

// omit removes a claim in tokenClaims.
type omitClaim struct{}

var omit = omitClaim{}

// tokenClaims returns valid claims at t0 for user-1, changed by mods.
func tokenClaims(mods map[string]any) map[string]any {
	c := map[string]any{
		"sub": "user-1",
		"iat": t0.Unix(),
		"exp": t0.Add(5 * time.Minute).Unix(),
	}
	for k, v := range mods {
		if v == omit {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

// mint encodes a token with any header, signing with sign.
func mint(tb testing.TB, header, claims map[string]any, sign func([]byte) ([]byte, error)) string {
	tb.Helper()
	tok, err := encode(header, claims, sign)
	if err != nil {
		tb.Fatalf("mint: %v", err)
	}
	return tok
}

// hmacWith signs with HMAC-SHA256 under key.
func hmacWith(key []byte) func([]byte) ([]byte, error) {
	return func(in []byte) ([]byte, error) {
		m := hmac.New(sha256.New, key)
		m.Write(in)
		return m.Sum(nil), nil
	}
}

// hs256 signs claims with the test secret.
func hs256(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	return mint(tb, header(AlgHS256, ""), claims, hmacWith(testSecret))
}

// signWith is SignWith that fails the test on error.
func signWith(tb testing.TB, key crypto.Signer, alg, kid string, claims map[string]any) string {
	tb.Helper()
	tok, err := SignWith(key, alg, kid, claims)
	if err != nil {
		tb.Fatalf("SignWith: %v", err)
	}
	return tok
}

// newVerifier returns a Verifier closed when the test ends.
func newVerifier(tb testing.TB, cfg Config) *Verifier {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	v, err := New(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { v.Close() })
	return v
}

func writeFile(tb testing.TB, name string, data []byte) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func pemPublic(tb testing.TB, pubs ...any) []byte {
	tb.Helper()
	var buf bytes.Buffer
	for _, pub := range pubs {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			tb.Fatal(err)
		}
		buf.WriteString("# a comment before the block\n")
		if err := pem.Encode(&buf, &pem.Block{Type: "PUBLIC KEY", Bytes: der}); err != nil {
			tb.Fatal(err)
		}
	}
	return buf.Bytes()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(pub *rsa.PublicKey, kid string) map[string]any {
	return map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func edJWK(pub ed25519.PublicKey, kid string) map[string]any {
	return map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pub)}
}

func jwksDoc(tb testing.TB, keys ...map[string]any) []byte {
	tb.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// checkRefusal fails unless err is a *protocol.Error with code want that
// says nothing about the keys.
func checkRefusal(tb testing.TB, err error, want protocol.ErrorCode) {
	tb.Helper()
	var pe *protocol.Error
	if !errors.As(err, &pe) {
		tb.Fatalf("err = %v (%T), want *protocol.Error %s", err, err, want)
	}
	if pe.Code != want {
		tb.Fatalf("code = %s (%q), want %s", pe.Code, pe.Message, want)
	}
	if pe.Retryable {
		tb.Errorf("retryable = true, want false")
	}
	if strings.Contains(pe.Message, string(testSecret)) || strings.Contains(strings.ToLower(pe.Message), "begin") {
		tb.Errorf("message %q leaks key material", pe.Message)
	}
}

// tamper changes the character at i of a token segment to another valid
// base64url character.
func tamper(tok string, seg, i int) string {
	parts := strings.Split(tok, ".")
	p := []byte(parts[seg])
	if p[i] == 'A' {
		p[i] = 'B'
	} else {
		p[i] = 'A'
	}
	parts[seg] = string(p)
	return strings.Join(parts, ".")
}
