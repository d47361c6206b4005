package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"testing"
)

// FuzzKeyFile parses arbitrary key files, PEM and JWKS: it never panics;
// every key it accepts is one this package can verify with safely (an RSA
// modulus of MinRSABits to maxRSABits with an odd exponent, or a 32-byte
// Ed25519 key) and paired with its one algorithm; a JWKS key carrying
// private material is never accepted; every JWKS key is either accepted or
// skipped with a short reason; and the accepted keys, written back as PEM
// and as JWKS, parse to the same keys.
func FuzzKeyFile(f *testing.F) {
	// RSA keys take long to make, and every fuzz worker would make
	// them: the RSA seeds are in testdata/fuzz/FuzzKeyFile.
	edA := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	edB := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
	f.Add(pemPublic(f, edA, edB))
	f.Add(jwksDoc(f, edJWK(edA, "a"), edJWK(edB, "b")))
	f.Add(jwksDoc(f,
		map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(edA), "d": "AQ"},
		map[string]any{"kty": "OKP", "crv": "X25519", "x": b64(edA)},
		map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(edA) + "==", "use": "enc"},
		map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(edA[:31])},
		map[string]any{"kty": "RSA", "n": b64(edA), "e": "AQAB", "alg": "PS256", "kid": strings.Repeat("k", 200)},
	))
	f.Add([]byte("-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----\n"))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMAA=\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte(`{"keys":null}`))
	f.Add([]byte(`{"keys":[1,"x",{}]}`))
	f.Add([]byte("  {"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, skipped, err := parseKeyFile(data)
		if err != nil {
			if len(keys) > 0 {
				t.Fatalf("error %v with %d keys", err, len(keys))
			}
			return
		}
		if len(keys) > maxKeys {
			t.Fatalf("%d keys, at most %d", len(keys), maxKeys)
		}
		for i, key := range keys {
			checkKey(t, i, key)
		}
		for _, s := range skipped {
			if len(s) > 300 {
				t.Fatalf("skip reason of %d bytes: %.80q…", len(s), s)
			}
		}
		if again, skipped2, _ := parseKeyFile(data); !reflect.DeepEqual(again, keys) || !reflect.DeepEqual(skipped2, skipped) {
			t.Fatal("parsing twice gave different keys")
		}
		isJWKS := bytes.HasPrefix(bytes.TrimSpace(data), []byte("{"))
		if isJWKS {
			var set struct{ Keys []json.RawMessage }
			if err := json.Unmarshal(data, &set); err != nil {
				t.Fatalf("parsed a JWKS that does not decode: %v", err)
			}
			if len(keys)+len(skipped) != len(set.Keys) {
				t.Fatalf("%d keys in the set: %d accepted, %d skipped", len(set.Keys), len(keys), len(skipped))
			}
			private := 0
			for _, raw := range set.Keys {
				var j struct{ D any }
				if json.Unmarshal(raw, &j) == nil && j.D != nil && j.D != "" {
					private++
				}
			}
			if len(keys) > len(set.Keys)-private {
				t.Fatalf("accepted %d keys of %d, %d of them private", len(keys), len(set.Keys), private)
			}
		} else if len(keys) == 0 {
			t.Fatal("PEM without keys and no error")
		}
		if len(keys) == 0 {
			return
		}
		// Written back, the keys read the same.
		var pemKeys []any
		var jwks []map[string]any
		for _, key := range keys {
			pemKeys = append(pemKeys, key.key)
			switch pub := key.key.(type) {
			case *rsa.PublicKey:
				jwks = append(jwks, map[string]any{"kty": "RSA", "kid": key.kid,
					"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes())})
			case ed25519.PublicKey:
				jwks = append(jwks, edJWK(pub, key.kid))
			}
		}
		fromPEM, err := parsePEM(pemPublic(t, pemKeys...))
		if err != nil {
			t.Fatalf("keys written as PEM: %v", err)
		}
		fromJWKS, skippedJWKS, err := parseJWKS(jwksDoc(t, jwks...))
		if err != nil || len(skippedJWKS) > 0 {
			t.Fatalf("keys written as JWKS: %v, skipped %q", err, skippedJWKS)
		}
		for i, key := range keys {
			if !sameKey(fromPEM[i], key, false) || !sameKey(fromJWKS[i], key, true) {
				t.Fatalf("key %d (%s %q) does not read back the same", i, key.alg, key.kid)
			}
		}
	})
}

// checkKey fails unless key is safe to verify with, under its algorithm.
func checkKey(t testing.TB, i int, key publicKey) {
	t.Helper()
	switch pub := key.key.(type) {
	case *rsa.PublicKey:
		if key.alg != AlgRS256 {
			t.Fatalf("key %d: RSA key for %s", i, key.alg)
		}
		if bits := pub.N.BitLen(); bits < MinRSABits || bits > maxRSABits || pub.E < 3 || pub.E%2 == 0 {
			t.Fatalf("key %d: RSA key of %d bits, exponent %d", i, bits, pub.E)
		}
	case ed25519.PublicKey:
		if key.alg != AlgEdDSA || len(pub) != ed25519.PublicKeySize {
			t.Fatalf("key %d: %d-byte Ed25519 key for %s", i, len(pub), key.alg)
		}
	default:
		t.Fatalf("key %d: %T for %s", i, key.key, key.alg)
	}
}

// sameKey compares keys by algorithm, encoding and, if withKid, key id.
func sameKey(a, b publicKey, withKid bool) bool {
	da, errA := x509.MarshalPKIXPublicKey(a.key)
	db, errB := x509.MarshalPKIXPublicKey(b.key)
	return errA == nil && errB == nil && bytes.Equal(da, db) && a.alg == b.alg && (!withKid || a.kid == b.kid)
}
