package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSigner(t *testing.T) {
	s := NewHS256Signer(testSecret)
	s.Issuer = "https://shop.example"
	s.KeyID = "hs-1"
	s.Now = func() time.Time { return t0 }
	v := newVerifier(t, Config{HS256Secret: testSecret, Audience: "cartsync", Issuer: "https://shop.example", Now: func() time.Time { return t0.Add(time.Minute) }})

	tok, err := s.Sign("user-42", 10*time.Minute, "cartsync")
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if got, err := v.VerifyUser(t.Context(), tok); err != nil || got != "user-42" {
		t.Fatalf("VerifyUser = %q, %v; want user-42", got, err)
	}

	hdr, claims := decodeToken(t, tok)
	if got, want := hdr["alg"], AlgHS256; got != want {
		t.Errorf("alg = %v, want %v", got, want)
	}
	if got, want := hdr["kid"], "hs-1"; got != want {
		t.Errorf("kid = %v, want %v", got, want)
	}
	for name, want := range map[string]any{
		"sub": "user-42", "aud": "cartsync", "iss": "https://shop.example",
		"iat": float64(t0.Unix()), "exp": float64(t0.Add(10 * time.Minute).Unix()),
	} {
		if got := claims[name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	other, err := s.Sign("user-42", 10*time.Minute, "")
	if err != nil {
		t.Fatal(err)
	}
	_, otherClaims := decodeToken(t, other)
	if jti, _ := claims["jti"].(string); jti == "" || jti == otherClaims["jti"] {
		t.Errorf("jti = %q then %q, want two different random ids", claims["jti"], otherClaims["jti"])
	}
	if _, ok := otherClaims["aud"]; ok {
		t.Errorf("aud set for an empty audience: %v", otherClaims["aud"])
	}
}

func TestSignerErrors(t *testing.T) {
	tests := []struct {
		name   string
		secret []byte
		sub    string
		ttl    time.Duration
		want   string
	}{
		{"short secret", []byte("short"), "user-1", time.Minute, "at least"},
		{"empty sub", testSecret, "", time.Minute, "sub"},
		{"control in sub", testSecret, "a\x00b", time.Minute, "sub"},
		{"long sub", testSecret, strings.Repeat("u", MaxSubjectBytes+1), time.Minute, "sub"},
		{"zero ttl", testSecret, "user-1", 0, "lifetime"},
		{"negative ttl", testSecret, "user-1", -time.Minute, "lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewHS256Signer(tt.secret).Sign(tt.sub, tt.ttl, "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestSignWithErrors(t *testing.T) {
	k := keys()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"RSA key, EdDSA", errOf(SignWith(k.rsaA, AlgEdDSA, "", tokenClaims(nil)))},
		{"Ed25519 key, RS256", errOf(SignWith(k.edA, AlgRS256, "", tokenClaims(nil)))},
		{"Ed25519 key, none", errOf(SignWith(k.edA, "none", "", tokenClaims(nil)))},
		{"ECDSA key", errOf(SignWith(ec, "ES256", "", tokenClaims(nil)))},
		{"unencodable claims", errOf(SignWith(k.edA, AlgEdDSA, "", map[string]any{"f": func() {}}))},
	} {
		if tt.err == nil {
			t.Errorf("%s: no error", tt.name)
		}
	}
}

func errOf(_ string, err error) error { return err }

func decodeToken(tb testing.TB, tok string) (header, claims map[string]any) {
	tb.Helper()
	p := strings.Split(tok, ".")
	if len(p) != 3 {
		tb.Fatalf("token has %d segments", len(p))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(p[i])
		if err != nil {
			tb.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			tb.Fatal(err)
		}
	}
	return header, claims
}
