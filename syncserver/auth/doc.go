// Package auth verifies the user tokens a storefront issues, so the sync
// server knows which logged-in user a connection acts for.
//
// Token flow: the storefront's backend signs a short-lived JWT whose "sub" is
// the user id; the host page hands it to the cart widget, which presents it to
// the sync server in hello (or on an HTTP request). The server asks a
// [Verifier] who the token vouches for.
//
// Keys: an HS256 shared secret, and Ed25519 (EdDSA) or RSA (RS256) public
// keys from a PEM file, a JWKS file or a JWKS URL. The algorithm a token names
// must match the type of the key that checks it: an HS256 token is only ever
// checked against the shared secret, never against a public key, and "none"
// is never accepted. A JWKS URL is fetched at start, every ten minutes, and
// when a token names a key id it does not know, at most once a minute.
//
// Claims: "exp" and "sub" are required; "nbf" and "iat" must not be in the
// future; "aud" and "iss" are checked when configured. Clock skew up to the
// configured leeway is tolerated.
//
// Errors: every refusal is a *protocol.Error; an expired token is
// token_expired (the user must log in again), everything else unauthorized.
// Messages say what was wrong with the token, never anything about the keys.
package auth
