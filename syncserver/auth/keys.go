package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
)

// Signing algorithms, as named in a token's "alg" header.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgEdDSA = "EdDSA"
)

// Key limits.
const (
	// MinSecretBytes is the shortest HS256 secret accepted (RFC 7518 3.2).
	MinSecretBytes = 32
	// MinRSABits is the smallest RSA modulus accepted.
	MinRSABits = 2048
	// maxRSABits bounds the cost of one RSA verification.
	maxRSABits = 8192
	// maxKeys bounds a key set, and so the keys tried for a token without
	// a key id.
	maxKeys = 100
)

// publicKey is one verification key.
type publicKey struct {
	kid string
	alg string // AlgRS256 or AlgEdDSA, and key's type follows from it
	key any    // *rsa.PublicKey or ed25519.PublicKey
}

// newPublicKey checks pub and pairs it with the one algorithm it verifies.
func newPublicKey(pub any, kid string) (publicKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if err := checkRSA(k); err != nil {
			return publicKey{}, err
		}
		return publicKey{kid: kid, alg: AlgRS256, key: k}, nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return publicKey{}, fmt.Errorf("Ed25519 key of %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		return publicKey{kid: kid, alg: AlgEdDSA, key: k}, nil
	}
	return publicKey{}, fmt.Errorf("unsupported key type %T: want Ed25519 or RSA", pub)
}

func checkRSA(k *rsa.PublicKey) error {
	if k.N == nil || k.N.Sign() <= 0 {
		return errors.New("RSA key without a modulus")
	}
	if bits := k.N.BitLen(); bits < MinRSABits || bits > maxRSABits {
		return fmt.Errorf("RSA key of %d bits: want %d to %d", bits, MinRSABits, maxRSABits)
	}
	if k.E < 3 || k.E%2 == 0 {
		return errors.New("RSA key with an invalid public exponent")
	}
	return nil
}

// parseKeyFile parses a key file: a JWKS document if it starts with "{",
// otherwise PEM PUBLIC KEY blocks. skipped lists JWKS keys left out, and why.
func parseKeyFile(data []byte) (keys []publicKey, skipped []string, err error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		return parseJWKS(data)
	}
	keys, err = parsePEM(data)
	return keys, nil, err
}

// parsePEM parses PUBLIC KEY (PKIX) or RSA PUBLIC KEY (PKCS #1) blocks.
// Every block must hold a usable key: the operator chose each one.
func parsePEM(data []byte) ([]publicKey, error) {
	var keys []publicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var pub any
		var err error
		switch {
		case block.Type == "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case block.Type == "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case strings.Contains(block.Type, "PRIVATE"):
			return nil, fmt.Errorf("PEM block %d is a private key: configure the public key only", n)
		default:
			return nil, fmt.Errorf("PEM block %d is %q, want PUBLIC KEY", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		k, err := newPublicKey(pub, "")
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", n, err)
		}
		if len(keys) == maxKeys {
			return nil, fmt.Errorf("more than %d keys", maxKeys)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM PUBLIC KEY block and not a JWKS document")
	}
	return keys, nil
}

// jwk is the part of a JSON Web Key (RFC 7517, 7518, 8037) this package reads.
type jwk struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	N      string   `json:"n"`   // RSA modulus
	E      string   `json:"e"`   // RSA exponent
	Crv    string   `json:"crv"` // OKP curve
	X      string   `json:"x"`   // OKP public key
	D      string   `json:"d"`   // private part: must never be published
}

// parseJWKS parses a JWK Set. Keys this package cannot use for verifying
// (other types or curves, encryption keys, keys bound to another algorithm)
// are skipped, so a set shared with other consumers still works; a key of a
// supported kind that is unsafe (a short RSA modulus, private material) is
// skipped too. The caller decides whether an empty result is an error.
func parseJWKS(data []byte) (keys []publicKey, skipped []string, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, fmt.Errorf("not a JWKS document: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New(`not a JWKS document: no "keys" array`)
	}
	if len(set.Keys) > maxKeys {
		return nil, nil, fmt.Errorf("JWKS of %d keys, at most %d", len(set.Keys), maxKeys)
	}
	for i, raw := range set.Keys {
		var j jwk
		if err := json.Unmarshal(raw, &j); err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d: malformed", i))
			continue
		}
		k, err := j.publicKey()
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("key %d (kid %q): %v", i, clip(j.Kid), err))
			continue
		}
		keys = append(keys, k)
	}
	return keys, skipped, nil
}

func (j *jwk) publicKey() (publicKey, error) {
	if j.Use != "" && j.Use != "sig" {
		return publicKey{}, fmt.Errorf("use %q, not for signatures", clip(j.Use))
	}
	if len(j.KeyOps) > 0 && !slices.Contains(j.KeyOps, "verify") {
		return publicKey{}, errors.New(`key_ops without "verify"`)
	}
	if j.D != "" {
		return publicKey{}, errors.New("holds private key material; refusing a leaked key")
	}
	switch j.Kty {
	case "RSA":
		if j.Alg != "" && j.Alg != AlgRS256 {
			return publicKey{}, fmt.Errorf("bound to alg %q", clip(j.Alg))
		}
		n, err := decodeB64(j.N)
		if err != nil || len(n) == 0 {
			return publicKey{}, errors.New("bad RSA modulus")
		}
		e, err := decodeB64(j.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return publicKey{}, errors.New("bad RSA exponent")
		}
		exp := new(big.Int).SetBytes(e)
		if !exp.IsInt64() || exp.Int64() > 1<<31-1 {
			return publicKey{}, errors.New("bad RSA exponent")
		}
		return newPublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())}, j.Kid)
	case "OKP":
		if j.Crv != "Ed25519" {
			return publicKey{}, fmt.Errorf("curve %q unsupported", clip(j.Crv))
		}
		// "Ed25519" is the fully specified name of RFC 9864.
		if j.Alg != "" && j.Alg != AlgEdDSA && j.Alg != "Ed25519" {
			return publicKey{}, fmt.Errorf("bound to alg %q", clip(j.Alg))
		}
		x, err := decodeB64(j.X)
		if err != nil {
			return publicKey{}, errors.New("bad Ed25519 key")
		}
		return newPublicKey(ed25519.PublicKey(x), j.Kid)
	}
	return publicKey{}, fmt.Errorf("kty %q unsupported", clip(j.Kty))
}

// decodeB64 decodes base64url, tolerating the padding some producers add.
func decodeB64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// clip shortens a string from a key set for a log line.
func clip(s string) string {
	const maxLen = 64
	if len(s) > maxLen {
		return s[:maxLen] + "…"
	}
	return s
}
