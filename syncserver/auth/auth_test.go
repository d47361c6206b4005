package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/protocol"
)

// TestVerifyClaims covers claim checks and token forms, on HS256.
func TestVerifyClaims(t *testing.T) {
	sec := func(d time.Duration) int64 { return t0.Add(d).Unix() }
	valid := hs256(t, tokenClaims(nil))
	bigClaim := strings.Repeat("x", MaxTokenBytes)
	long := strings.Repeat("u", MaxSubjectBytes)

	tests := []struct {
		name     string
		cfg      Config // merged into the base config
		token    string
		wantSub  string
		wantCode protocol.ErrorCode
	}{
		{name: "valid", token: valid, wantSub: "user-1"},
		{name: "aud not checked when not configured", token: hs256(t, tokenClaims(map[string]any{"aud": "other"})), wantSub: "user-1"},
		{name: "sub of max length", token: hs256(t, tokenClaims(map[string]any{"sub": long})), wantSub: long},
		{name: "unicode sub", token: hs256(t, tokenClaims(map[string]any{"sub": "jürgen@example.de"})), wantSub: "jürgen@example.de"},

		{name: "expired within default leeway", token: hs256(t, tokenClaims(map[string]any{"exp": sec(-10 * time.Second)})), wantSub: "user-1"},
		{name: "expired beyond default leeway", token: hs256(t, tokenClaims(map[string]any{"exp": sec(-31 * time.Second)})), wantCode: protocol.ErrTokenExpired},
		{name: "expired beyond custom leeway", cfg: Config{Leeway: 5 * time.Second}, token: hs256(t, tokenClaims(map[string]any{"exp": sec(-10 * time.Second)})), wantCode: protocol.ErrTokenExpired},
		{name: "expired without leeway", cfg: Config{Leeway: -1}, token: hs256(t, tokenClaims(map[string]any{"exp": sec(-time.Second)})), wantCode: protocol.ErrTokenExpired},
		{name: "expiring now without leeway", cfg: Config{Leeway: -1}, token: hs256(t, tokenClaims(map[string]any{"exp": sec(0)})), wantCode: protocol.ErrTokenExpired},
		{name: "expired long ago", token: hs256(t, tokenClaims(map[string]any{"iat": sec(-48 * time.Hour), "exp": sec(-47 * time.Hour)})), wantCode: protocol.ErrTokenExpired},
		{name: "expired and wrong audience", cfg: Config{Audience: "shop"}, token: hs256(t, tokenClaims(map[string]any{"exp": sec(-time.Hour), "aud": "other"})), wantCode: protocol.ErrUnauthorized},
		{name: "expired and no sub", token: hs256(t, tokenClaims(map[string]any{"exp": sec(-time.Hour), "sub": omit})), wantCode: protocol.ErrUnauthorized},
		{name: "expired with a bad signature", token: mint(t, header(AlgHS256, ""), tokenClaims(map[string]any{"exp": sec(-time.Hour)}), hmacWith([]byte("another-secret-0123456789abcdefghij"))), wantCode: protocol.ErrUnauthorized},

		{name: "nbf within leeway", token: hs256(t, tokenClaims(map[string]any{"nbf": sec(20 * time.Second)})), wantSub: "user-1"},
		{name: "nbf in the future", token: hs256(t, tokenClaims(map[string]any{"nbf": sec(time.Minute)})), wantCode: protocol.ErrUnauthorized},
		{name: "iat in the future", token: hs256(t, tokenClaims(map[string]any{"iat": sec(time.Minute)})), wantCode: protocol.ErrUnauthorized},

		{name: "audience", cfg: Config{Audience: "shop"}, token: hs256(t, tokenClaims(map[string]any{"aud": "shop"})), wantSub: "user-1"},
		{name: "audience in a list", cfg: Config{Audience: "shop"}, token: hs256(t, tokenClaims(map[string]any{"aud": []string{"cms", "shop"}})), wantSub: "user-1"},
		{name: "wrong audience", cfg: Config{Audience: "shop"}, token: hs256(t, tokenClaims(map[string]any{"aud": "cms"})), wantCode: protocol.ErrUnauthorized},
		{name: "missing audience when required", cfg: Config{Audience: "shop"}, token: valid, wantCode: protocol.ErrUnauthorized},
		{name: "empty audience when required", cfg: Config{Audience: "shop"}, token: hs256(t, tokenClaims(map[string]any{"aud": []string{}})), wantCode: protocol.ErrUnauthorized},

		{name: "issuer", cfg: Config{Issuer: "https://shop.example"}, token: hs256(t, tokenClaims(map[string]any{"iss": "https://shop.example"})), wantSub: "user-1"},
		{name: "wrong issuer", cfg: Config{Issuer: "https://shop.example"}, token: hs256(t, tokenClaims(map[string]any{"iss": "https://evil.example"})), wantCode: protocol.ErrUnauthorized},
		{name: "missing issuer when required", cfg: Config{Issuer: "https://shop.example"}, token: valid, wantCode: protocol.ErrUnauthorized},

		{name: "missing sub", token: hs256(t, tokenClaims(map[string]any{"sub": omit})), wantCode: protocol.ErrUnauthorized},
		{name: "empty sub", token: hs256(t, tokenClaims(map[string]any{"sub": ""})), wantCode: protocol.ErrUnauthorized},
		{name: "sub too long", token: hs256(t, tokenClaims(map[string]any{"sub": long + "u"})), wantCode: protocol.ErrUnauthorized},
		{name: "sub with a newline", token: hs256(t, tokenClaims(map[string]any{"sub": "user\n1"})), wantCode: protocol.ErrUnauthorized},
		{name: "sub with a bidi override", token: hs256(t, tokenClaims(map[string]any{"sub": "user\u202e1"})), wantCode: protocol.ErrUnauthorized},
		{name: "sub not a string", token: hs256(t, tokenClaims(map[string]any{"sub": 42})), wantCode: protocol.ErrUnauthorized},
		{name: "missing exp", token: hs256(t, tokenClaims(map[string]any{"exp": omit})), wantCode: protocol.ErrUnauthorized},
		{name: "exp not a number", token: hs256(t, tokenClaims(map[string]any{"exp": "tomorrow"})), wantCode: protocol.ErrUnauthorized},

		{name: "alg none", token: mint(t, map[string]any{"alg": "none"}, tokenClaims(nil), func([]byte) ([]byte, error) { return nil, nil }), wantCode: protocol.ErrUnauthorized},
		{name: "alg None", token: mint(t, map[string]any{"alg": "None", "typ": "JWT"}, tokenClaims(nil), func([]byte) ([]byte, error) { return nil, nil }), wantCode: protocol.ErrUnauthorized},
		{name: "alg none with a signature", token: mint(t, map[string]any{"alg": "none"}, tokenClaims(nil), hmacWith(testSecret)), wantCode: protocol.ErrUnauthorized},
		{name: "alg missing", token: mint(t, map[string]any{"typ": "JWT"}, tokenClaims(nil), hmacWith(testSecret)), wantCode: protocol.ErrUnauthorized},
		{name: "alg HS512", token: mint(t, header("HS512", ""), tokenClaims(nil), hmacWith(testSecret)), wantCode: protocol.ErrUnauthorized},
		{name: "crit header", token: mint(t, map[string]any{"alg": AlgHS256, "crit": []string{"exp"}}, tokenClaims(nil), hmacWith(testSecret)), wantCode: protocol.ErrUnauthorized},
		{name: "tampered payload", token: retarget(t, valid, tokenClaims(map[string]any{"sub": "admin"})), wantCode: protocol.ErrUnauthorized},
		{name: "tampered signature", token: tamper(valid, 2, 10), wantCode: protocol.ErrUnauthorized},
		{name: "signature dropped", token: valid[:strings.LastIndex(valid, ".")+1], wantCode: protocol.ErrUnauthorized},
		{name: "wrong secret", token: mint(t, header(AlgHS256, ""), tokenClaims(nil), hmacWith([]byte("another-secret-0123456789abcdefghij"))), wantCode: protocol.ErrUnauthorized},
		{name: "oversize token", token: hs256(t, tokenClaims(map[string]any{"pad": bigClaim})), wantCode: protocol.ErrUnauthorized},
		{name: "padded segments", token: strings.ReplaceAll(valid, ".", "=."), wantCode: protocol.ErrUnauthorized},

		{name: "empty", token: "", wantCode: protocol.ErrUnauthorized},
		{name: "garbage", token: "not a token", wantCode: protocol.ErrUnauthorized},
		{name: "dots", token: "..", wantCode: protocol.ErrUnauthorized},
		{name: "four segments", token: valid + ".x", wantCode: protocol.ErrUnauthorized},
		{name: "header not JSON", token: "bm90IGpzb24." + strings.SplitN(valid, ".", 2)[1], wantCode: protocol.ErrUnauthorized},
		{name: "kid not a string", token: mint(t, map[string]any{"alg": AlgHS256, "kid": 7}, tokenClaims(nil), hmacWith(testSecret)), wantCode: protocol.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.HS256Secret = testSecret
			cfg.Now = func() time.Time { return t0 }
			v := newVerifier(t, cfg)
			got, err := v.VerifyUser(t.Context(), tt.token)
			if tt.wantCode != "" {
				checkRefusal(t, err, tt.wantCode)
				if got != "" {
					t.Errorf("sub = %q with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("VerifyUser: %v", err)
			}
			if got != tt.wantSub {
				t.Errorf("sub = %q, want %q", got, tt.wantSub)
			}
		})
	}
}

func TestExpiredError(t *testing.T) {
	v := newVerifier(t, Config{HS256Secret: testSecret, Now: func() time.Time { return t0.Add(time.Hour) }})
	_, err := v.VerifyUser(t.Context(), hs256(t, tokenClaims(nil)))
	want := &protocol.Error{Code: protocol.ErrTokenExpired, Message: "user token expired: log in again", Retryable: false}
	var got *protocol.Error
	if !errors.As(err, &got) || !reflect.DeepEqual(got, want) {
		t.Errorf("err = %#v, want %#v", got, want)
	}
}

// retarget keeps tok's header and signature but swaps in other claims.
func retarget(tb testing.TB, tok string, claims map[string]any) string {
	tb.Helper()
	other := hs256(tb, claims)
	p, o := strings.Split(tok, "."), strings.Split(other, ".")
	return p[0] + "." + o[1] + "." + p[2]
}

// TestVerifyKeys covers key sources, key selection and algorithm
// confusion.
func TestVerifyKeys(t *testing.T) {
	k := keys()
	edA := k.edA.Public().(ed25519.PublicKey)
	rsaA, rsaB := &k.rsaA.PublicKey, &k.rsaB.PublicKey
	c := tokenClaims(nil)

	edPEM := writeFile(t, "ed.pem", pemPublic(t, edA))
	rsaPEMBytes := pemPublic(t, rsaA)
	rsaPEM := writeFile(t, "rsa.pem", rsaPEMBytes)
	bothPEM := writeFile(t, "both.pem", pemPublic(t, edA, rsaA))
	jwksFile := writeFile(t, "jwks.json", jwksDoc(t,
		rsaJWK(rsaA, "a"), rsaJWK(rsaB, "b"), edJWK(edA, "ed-a"),
		map[string]any{"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AA", "y": "AA"},
	))
	der, err := x509.MarshalPKIXPublicKey(rsaA)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(jwksDoc(t, rsaJWK(rsaA, "a")))
	}))
	t.Cleanup(srv.Close)

	hsWith := func(key []byte) string { return mint(t, header(AlgHS256, ""), c, hmacWith(key)) }
	tests := []struct {
		name     string
		cfg      Config
		token    string
		wantSub  string
		wantCode protocol.ErrorCode
	}{
		{name: "EdDSA from PEM", cfg: Config{PublicKeyFile: edPEM}, token: signWith(t, k.edA, AlgEdDSA, "", c), wantSub: "user-1"},
		{name: "EdDSA with a kid, PEM key has none", cfg: Config{PublicKeyFile: edPEM}, token: signWith(t, k.edA, AlgEdDSA, "any", c), wantSub: "user-1"},
		{name: "EdDSA wrong key", cfg: Config{PublicKeyFile: edPEM}, token: signWith(t, k.edB, AlgEdDSA, "", c), wantCode: protocol.ErrUnauthorized},
		{name: "EdDSA tampered payload", cfg: Config{PublicKeyFile: edPEM}, token: retarget(t, signWith(t, k.edA, AlgEdDSA, "", c), tokenClaims(map[string]any{"sub": "admin"})), wantCode: protocol.ErrUnauthorized},
		{name: "EdDSA tampered signature", cfg: Config{PublicKeyFile: edPEM}, token: tamper(signWith(t, k.edA, AlgEdDSA, "", c), 2, 20), wantCode: protocol.ErrUnauthorized},
		{name: "RS256 from PEM", cfg: Config{PublicKeyFile: rsaPEM}, token: signWith(t, k.rsaA, AlgRS256, "", c), wantSub: "user-1"},
		{name: "RS256 wrong key", cfg: Config{PublicKeyFile: rsaPEM}, token: signWith(t, k.rsaB, AlgRS256, "", c), wantCode: protocol.ErrUnauthorized},
		{name: "RS256 tampered signature", cfg: Config{PublicKeyFile: rsaPEM}, token: tamper(signWith(t, k.rsaA, AlgRS256, "", c), 2, 100), wantCode: protocol.ErrUnauthorized},
		{name: "mixed PEM, EdDSA", cfg: Config{PublicKeyFile: bothPEM}, token: signWith(t, k.edA, AlgEdDSA, "", c), wantSub: "user-1"},
		{name: "mixed PEM, RS256", cfg: Config{PublicKeyFile: bothPEM}, token: signWith(t, k.rsaA, AlgRS256, "", c), wantSub: "user-1"},
		{name: "RS256 token, only an Ed25519 key", cfg: Config{PublicKeyFile: edPEM}, token: signWith(t, k.rsaA, AlgRS256, "", c), wantCode: protocol.ErrUnauthorized},
		{name: "EdDSA header on an RSA signature", cfg: Config{PublicKeyFile: bothPEM}, token: relabel(t, signWith(t, k.rsaA, AlgRS256, "", c), AlgEdDSA), wantCode: protocol.ErrUnauthorized},

		{name: "JWKS file, kid a", cfg: Config{PublicKeyFile: jwksFile}, token: signWith(t, k.rsaA, AlgRS256, "a", c), wantSub: "user-1"},
		{name: "JWKS file, kid b", cfg: Config{PublicKeyFile: jwksFile}, token: signWith(t, k.rsaB, AlgRS256, "b", c), wantSub: "user-1"},
		{name: "JWKS file, no kid tries each key", cfg: Config{PublicKeyFile: jwksFile}, token: signWith(t, k.rsaB, AlgRS256, "", c), wantSub: "user-1"},
		{name: "JWKS file, kid names another key", cfg: Config{PublicKeyFile: jwksFile}, token: signWith(t, k.rsaB, AlgRS256, "a", c), wantCode: protocol.ErrUnauthorized},
		{name: "JWKS file, unknown kid", cfg: Config{PublicKeyFile: jwksFile}, token: signWith(t, k.rsaA, AlgRS256, "zz", c), wantCode: protocol.ErrUnauthorized},
		{name: "JWKS file, EdDSA", cfg: Config{PublicKeyFile: jwksFile}, token: signWith(t, k.edA, AlgEdDSA, "ed-a", c), wantSub: "user-1"},
		{name: "JWKS file, RSA kid on an EdDSA token", cfg: Config{PublicKeyFile: jwksFile}, token: signWith(t, k.edA, AlgEdDSA, "a", c), wantCode: protocol.ErrUnauthorized},
		{name: "JWKS URL", cfg: Config{JWKSURL: srv.URL, HTTPClient: srv.Client()}, token: signWith(t, k.rsaA, AlgRS256, "a", c), wantSub: "user-1"},

		{name: "HS256 with only public keys", cfg: Config{PublicKeyFile: bothPEM}, token: hs256(t, c), wantCode: protocol.ErrUnauthorized},
		{name: "HS256 with only a JWKS URL", cfg: Config{JWKSURL: srv.URL, HTTPClient: srv.Client()}, token: hs256(t, c), wantCode: protocol.ErrUnauthorized},
		{name: "confusion: HMAC under the RSA PEM", cfg: Config{PublicKeyFile: rsaPEM}, token: hsWith(rsaPEMBytes), wantCode: protocol.ErrUnauthorized},
		{name: "confusion: HMAC under the RSA DER", cfg: Config{PublicKeyFile: rsaPEM}, token: hsWith(der), wantCode: protocol.ErrUnauthorized},
		{name: "confusion: HMAC under the RSA modulus", cfg: Config{PublicKeyFile: jwksFile}, token: hsWith(rsaA.N.Bytes()), wantCode: protocol.ErrUnauthorized},
		{name: "confusion: HMAC under the Ed25519 key", cfg: Config{PublicKeyFile: edPEM}, token: hsWith(edA), wantCode: protocol.ErrUnauthorized},
		{name: "confusion: HMAC under the RSA PEM, secret also set", cfg: Config{PublicKeyFile: rsaPEM, HS256Secret: testSecret}, token: hsWith(rsaPEMBytes), wantCode: protocol.ErrUnauthorized},
		{name: "confusion: HMAC under the RSA PEM with its kid", cfg: Config{PublicKeyFile: jwksFile, HS256Secret: testSecret}, token: mint(t, header(AlgHS256, "a"), c, hmacWith(rsaPEMBytes)), wantCode: protocol.ErrUnauthorized},
		{name: "secret and keys together, HS256", cfg: Config{PublicKeyFile: rsaPEM, HS256Secret: testSecret}, token: hs256(t, c), wantSub: "user-1"},
		{name: "secret and keys together, RS256", cfg: Config{PublicKeyFile: rsaPEM, HS256Secret: testSecret}, token: signWith(t, k.rsaA, AlgRS256, "", c), wantSub: "user-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Now = func() time.Time { return t0 }
			v := newVerifier(t, cfg)
			got, err := v.VerifyUser(t.Context(), tt.token)
			if tt.wantCode != "" {
				checkRefusal(t, err, tt.wantCode)
				return
			}
			if err != nil {
				t.Fatalf("VerifyUser: %v", err)
			}
			if got != tt.wantSub {
				t.Errorf("sub = %q, want %q", got, tt.wantSub)
			}
		})
	}
}

// relabel changes the alg of tok's header, keeping the rest.
func relabel(tb testing.TB, tok, alg string) string {
	tb.Helper()
	p := strings.Split(tok, ".")
	h := mint(tb, header(alg, ""), nil, hmacWith(testSecret))
	return strings.Split(h, ".")[0] + "." + p[1] + "." + p[2]
}

func TestNewErrors(t *testing.T) {
	k := keys()
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// A 1024-bit modulus need not be a real key to be refused.
	n, err := rand.Prime(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	small := &rsa.PublicKey{N: n, E: 65537}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k.edA)
	if err != nil {
		t.Fatal(err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	leakedJWK := edJWK(k.edA.Public().(ed25519.PublicKey), "leaked")
	leakedJWK["d"] = b64(k.edA.Seed())

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	t.Cleanup(failing.Close)
	notJSON := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html>"))
	}))
	t.Cleanup(notJSON.Close)
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"keys":[`))
		w.Write([]byte(strings.Repeat(" ", maxJWKSBytes)))
		w.Write([]byte(`]}`))
	}))
	t.Cleanup(huge.Close)

	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no key source", Config{}, "no key source"},
		{"short secret", Config{HS256Secret: []byte("short")}, "at least 32"},
		{"missing key file", Config{PublicKeyFile: "/nonexistent/keys.pem"}, "read key file"},
		{"empty key file", Config{PublicKeyFile: writeFile(t, "empty.pem", nil)}, "no PEM PUBLIC KEY"},
		{"private key PEM", Config{PublicKeyFile: writeFile(t, "priv.pem", privPEM)}, "private key"},
		{"certificate PEM", Config{PublicKeyFile: writeFile(t, "cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}))}, "want PUBLIC KEY"},
		{"ECDSA PEM", Config{PublicKeyFile: writeFile(t, "ec.pem", pemPublic(t, &ecKey.PublicKey))}, "unsupported key type"},
		{"short RSA PEM", Config{PublicKeyFile: writeFile(t, "small.pem", pemPublic(t, small))}, "1024 bits"},
		{"corrupt PEM", Config{PublicKeyFile: writeFile(t, "bad.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}))}, "PEM block 1"},
		{"JWKS file without usable keys", Config{PublicKeyFile: writeFile(t, "jwks.json", jwksDoc(t,
			rsaJWK(small, "small"),
			map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
			map[string]any{"kty": "RSA", "use": "enc", "n": b64(k.rsaA.N.Bytes()), "e": "AQAB"},
			map[string]any{"kty": "RSA", "alg": "PS256", "n": b64(k.rsaA.N.Bytes()), "e": "AQAB"},
			map[string]any{"kty": "OKP", "crv": "X25519", "x": b64(make([]byte, 32))},
			leakedJWK,
		))}, "no usable"},
		{"JWKS file not JSON", Config{PublicKeyFile: writeFile(t, "bad.json", []byte("{nope"))}, "not a JWKS"},
		{"JWKS URL unreachable", Config{JWKSURL: down.URL}, "fetch JWKS"},
		{"JWKS URL failing", Config{JWKSURL: failing.URL, HTTPClient: failing.Client()}, "500"},
		{"JWKS URL not JSON", Config{JWKSURL: notJSON.URL, HTTPClient: notJSON.Client()}, "not a JWKS"},
		{"JWKS URL too large", Config{JWKSURL: huge.URL, HTTPClient: huge.Client()}, "larger than"},
		{"JWKS URL not http", Config{JWKSURL: "file:///etc/jwks.json"}, "http(s)"},
		{"JWKS URL relative", Config{JWKSURL: "/jwks.json"}, "http(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Logger = quiet
			v, err := New(t.Context(), tt.cfg)
			if err == nil {
				v.Close()
				t.Fatalf("New succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNewCanceled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(jwksDoc(t, rsaJWK(&keys().rsaA.PublicKey, "a")))
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if v, err := New(ctx, Config{JWKSURL: srv.URL, HTTPClient: srv.Client(), Logger: quiet}); err == nil {
		v.Close()
		t.Fatal("New with a canceled context succeeded")
	}
}

func TestParseJWKSSkips(t *testing.T) {
	k := keys()
	odd := rsaJWK(&k.rsaB.PublicKey, "padded")
	odd["n"] = odd["n"].(string) + "=="
	doc := jwksDoc(t,
		rsaJWK(&k.rsaA.PublicKey, "a"),
		odd,
		map[string]any{"kty": "OKP", "crv": "Ed25519", "alg": "Ed25519", "x": b64(k.edA.Public().(ed25519.PublicKey))},
		map[string]any{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
		map[string]any{"kty": "RSA", "n": b64(k.rsaA.N.Bytes()), "e": "AAE"},                      // e = 1
		map[string]any{"kty": "RSA", "n": b64(k.rsaA.N.Bytes()), "e": b64(big.NewInt(4).Bytes())}, // even
		map[string]any{"kty": "RSA", "n": b64(k.rsaA.N.Bytes()), "e": "AQAB", "key_ops": []string{"encrypt"}},
		map[string]any{"kty": "OKP", "crv": "Ed25519", "x": "short"},
		map[string]any{"kty": 5},
	)
	got, skipped, err := parseJWKS(doc)
	if err != nil {
		t.Fatalf("parseJWKS: %v", err)
	}
	var kids []string
	for _, k := range got {
		kids = append(kids, k.alg+":"+k.kid)
	}
	if want := "RS256:a RS256:padded EdDSA:"; strings.Join(kids, " ") != want {
		t.Errorf("keys = %q, want %q", strings.Join(kids, " "), want)
	}
	if len(skipped) != 6 {
		t.Errorf("skipped %d keys, want 6: %q", len(skipped), skipped)
	}
}

// TestConcurrentVerify runs verifications in parallel, for the race
// detector.
func TestConcurrentVerify(t *testing.T) {
	k := keys()
	v := newVerifier(t, Config{HS256Secret: testSecret, PublicKeyFile: writeFile(t, "k.pem", pemPublic(t, k.edA.Public())), Now: func() time.Time { return t0 }})
	toks := []string{hs256(t, tokenClaims(nil)), signWith(t, k.edA, AlgEdDSA, "", tokenClaims(nil))}
	done := make(chan error)
	for i := range 8 {
		go func() {
			var err error
			for range 50 {
				if _, e := v.VerifyUser(context.Background(), toks[i%2]); e != nil {
					err = e
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// Public keys are often an identity provider's, shared by many
// applications: without aud and iss a token issued for another one logs in.
// New warns loudly, or refuses when told to require them; an HS256 secret
// is this application's own and needs neither.
func TestAudienceIssuerWithPublicKeys(t *testing.T) {
	file := writeFile(t, "keys.pem", pemPublic(t, keys().edA.Public()))
	tests := []struct {
		name     string
		cfg      Config
		wantErr  bool
		wantWarn bool
	}{
		{"public keys, neither", Config{PublicKeyFile: file}, false, true},
		{"public keys, audience only", Config{PublicKeyFile: file, Audience: "shop"}, false, true},
		{"public keys, both", Config{PublicKeyFile: file, Audience: "shop", Issuer: "idp"}, false, false},
		{"required, neither", Config{PublicKeyFile: file, RequireAudienceIssuer: true}, true, false},
		{"required, issuer only", Config{PublicKeyFile: file, Issuer: "idp", RequireAudienceIssuer: true}, true, false},
		{"required, both", Config{PublicKeyFile: file, Audience: "shop", Issuer: "idp", RequireAudienceIssuer: true}, false, false},
		{"hs256 secret, neither", Config{HS256Secret: []byte(strings.Repeat("s", MinSecretBytes)), RequireAudienceIssuer: true}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			tt.cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			v, err := New(t.Context(), tt.cfg)
			if err == nil {
				v.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("New error = %v, want error %v", err, tt.wantErr)
			}
			if warned := strings.Contains(logs.String(), "level=WARN"); warned != tt.wantWarn {
				t.Errorf("warned %v, want %v; logs: %s", warned, tt.wantWarn, logs.String())
			}
		})
	}
}

// VerifyUserUntil returns when the token stops being accepted: exp plus
// the leeway, so that open connections end when a new hello would fail.
func TestVerifyUserUntil(t *testing.T) {
	clk := newClock()
	v := newVerifier(t, Config{HS256Secret: []byte(strings.Repeat("s", MinSecretBytes)), Leeway: 5 * time.Second, Now: clk.Now})
	tok := mint(t, map[string]any{"alg": "HS256", "typ": "JWT"}, tokenClaims(nil), hmacWith([]byte(strings.Repeat("s", MinSecretBytes))))
	exp := t0.Add(5 * time.Minute).Unix()
	user, until, err := v.VerifyUserUntil(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(exp, 0).Add(5 * time.Second); user != "user-1" || !until.Equal(want) {
		t.Errorf("VerifyUserUntil = %q until %v, want user-1 until %v", user, until, want)
	}
}
