package auth

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Signer issues HS256 user tokens the way a storefront backend would, for
// the demo storefront and tests. A real storefront signs with its own stack.
type Signer struct {
	// Issuer, when set, becomes the "iss" claim.
	Issuer string
	// KeyID, when set, becomes the "kid" header.
	KeyID string
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	secret []byte
}

// NewHS256Signer returns a Signer using secret, which must be at least
// MinSecretBytes long for Sign to succeed.
func NewHS256Signer(secret []byte) *Signer {
	return &Signer{secret: bytes.Clone(secret)}
}

// Sign returns a token for user sub valid for ttl, with "iat", "exp", a
// random "jti", and "aud" when aud is not empty.
func (s *Signer) Sign(sub string, ttl time.Duration, aud string) (string, error) {
	if len(s.secret) < MinSecretBytes {
		return "", fmt.Errorf("auth: HS256 secret of %d bytes, want at least %d", len(s.secret), MinSecretBytes)
	}
	if !validSubject(sub) {
		return "", errSubject
	}
	if ttl <= 0 {
		return "", errors.New("auth: token lifetime must be positive")
	}
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	claims := map[string]any{
		"sub": sub,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
		"jti": base64.RawURLEncoding.EncodeToString(jti),
	}
	if aud != "" {
		claims["aud"] = aud
	}
	if s.Issuer != "" {
		claims["iss"] = s.Issuer
	}
	return encode(header(AlgHS256, s.KeyID), claims, func(in []byte) ([]byte, error) {
		m := hmac.New(sha256.New, s.secret)
		m.Write(in)
		return m.Sum(nil), nil
	})
}

// SignWith signs claims as given with key: alg RS256 for an RSA key, EdDSA
// for an Ed25519 key. kid, when not empty, becomes the "kid" header. For
// tests and demos.
func SignWith(key crypto.Signer, alg, kid string, claims map[string]any) (string, error) {
	var sign func([]byte) ([]byte, error)
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		if alg != AlgRS256 {
			return "", fmt.Errorf("auth: an RSA key signs %s, not %q", AlgRS256, alg)
		}
		sign = func(in []byte) ([]byte, error) {
			sum := sha256.Sum256(in)
			return key.Sign(rand.Reader, sum[:], crypto.SHA256)
		}
	case ed25519.PublicKey:
		if alg != AlgEdDSA {
			return "", fmt.Errorf("auth: an Ed25519 key signs %s, not %q", AlgEdDSA, alg)
		}
		sign = func(in []byte) ([]byte, error) {
			return key.Sign(rand.Reader, in, crypto.Hash(0))
		}
	default:
		return "", fmt.Errorf("auth: unsupported key type %T", pub)
	}
	return encode(header(alg, kid), claims, sign)
}

func header(alg, kid string) map[string]any {
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	return h
}

// encode builds a compact JWS: header.payload.signature.
func encode(header, claims map[string]any, sign func([]byte) ([]byte, error)) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("auth: encode header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("auth: encode claims: %w", err)
	}
	enc := base64.RawURLEncoding
	in := enc.AppendEncode(nil, h)
	in = append(in, '.')
	in = enc.AppendEncode(in, c)
	sig, err := sign(in)
	if err != nil {
		return "", fmt.Errorf("auth: sign: %w", err)
	}
	in = append(in, '.')
	return string(enc.AppendEncode(in, sig)), nil
}
