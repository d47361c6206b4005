package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/protocol"
)

// FuzzVerify feeds arbitrary strings to a Verifier holding every kind of
// key: it must never panic, must refuse with unauthorized or token_expired,
// and must only ever return a valid user id.
func FuzzVerify(f *testing.F) {
	k := keys()
	c := tokenClaims(map[string]any{"aud": "cartsync"})
	valid := hs256(f, c)
	for _, seed := range []string{
		valid,
		signWith(f, k.edA, AlgEdDSA, "", c),
		signWith(f, k.rsaA, AlgRS256, "", c),
		signWith(f, k.rsaA, AlgRS256, "unknown", c),
		mint(f, map[string]any{"alg": "none"}, c, func([]byte) ([]byte, error) { return nil, nil }),
		mint(f, map[string]any{"alg": AlgHS256, "kid": []int{1}, "crit": 5}, c, hmacWith(testSecret)),
		hs256(f, map[string]any{"sub": []string{"x"}, "exp": "soon", "aud": 5, "nbf": nil}),
		retarget(f, valid, map[string]any{"sub": "admin", "exp": 1e300}),
		"", ".", "..", "...", "a.b.c", "eyJ.eyJ.", "not a token",
		strings.Repeat("A", MaxTokenBytes+1),
	} {
		f.Add(seed)
	}
	v := newVerifier(f, Config{
		HS256Secret:   testSecret,
		PublicKeyFile: writeFile(f, "keys.pem", pemPublic(f, k.edA.Public(), &k.rsaA.PublicKey)),
		Audience:      "cartsync",
		Now:           func() time.Time { return t0 },
	})
	f.Fuzz(func(t *testing.T, tok string) {
		sub, err := v.VerifyUser(t.Context(), tok)
		if err != nil {
			var pe *protocol.Error
			if !errors.As(err, &pe) || (pe.Code != protocol.ErrUnauthorized && pe.Code != protocol.ErrTokenExpired) {
				t.Fatalf("err = %v (%T), want unauthorized or token_expired", err, err)
			}
			if sub != "" {
				t.Fatalf("sub = %q with an error", sub)
			}
			return
		}
		if !validSubject(sub) {
			t.Fatalf("accepted sub %q", sub)
		}
	})
}
