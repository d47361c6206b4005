package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
)

// Token limits.
const (
	// MaxTokenBytes is the longest token looked at.
	MaxTokenBytes = 8 << 10
	// MaxSubjectBytes is the longest user id ("sub") accepted.
	MaxSubjectBytes = protocol.MaxUserIDBytes
	// DefaultLeeway is the clock skew tolerated when Config.Leeway is zero.
	DefaultLeeway = 30 * time.Second
)

// Config says which tokens a Verifier accepts. At least one of HS256Secret,
// PublicKeyFile and JWKSURL must be set; several may be.
type Config struct {
	// HS256Secret, when set, accepts HS256 tokens signed with it. At least
	// MinSecretBytes long.
	HS256Secret []byte
	// PublicKeyFile names a file of PEM PUBLIC KEY blocks (Ed25519 or RSA)
	// or a JWKS document.
	PublicKeyFile string
	// JWKSURL is fetched at start and refreshed in the background.
	JWKSURL string
	// Audience, when set, must be one of the token's "aud".
	Audience string
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// RequireAudienceIssuer makes New fail when public keys or a JWKS URL
	// are set without both Audience and Issuer; without it New only warns.
	RequireAudienceIssuer bool
	// Leeway is the clock skew tolerated on exp, nbf and iat; zero means
	// DefaultLeeway, a negative value none.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient fetches JWKSURL; nil means a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger nil means slog.Default().
	Logger *slog.Logger
}

// Verifier checks user tokens. It is safe for concurrent use.
type Verifier struct {
	secret []byte
	static []publicKey
	remote *remoteKeys // nil without a JWKS URL
	parser *jwt.Parser
	leeway time.Duration
	log    *slog.Logger

	stop      context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
}

var _ syncserver.ExpiringUserVerifier = (*Verifier)(nil)

// New returns a Verifier for cfg. It reads the key file and fetches the JWKS
// URL now, so a misconfiguration fails at start; Close stops the background
// refresh.
func New(ctx context.Context, cfg Config) (*Verifier, error) {
	if len(cfg.HS256Secret) == 0 && cfg.PublicKeyFile == "" && cfg.JWKSURL == "" {
		return nil, errors.New("auth: no key source: set an HS256 secret, a public key file or a JWKS URL")
	}
	if n := len(cfg.HS256Secret); n > 0 && n < MinSecretBytes {
		return nil, fmt.Errorf("auth: HS256 secret of %d bytes, want at least %d", n, MinSecretBytes)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	v := &Verifier{secret: bytes.Clone(cfg.HS256Secret), log: cfg.Logger, leeway: leeway}
	if v.log == nil {
		v.log = slog.Default()
	}
	if shared := cfg.PublicKeyFile != "" || cfg.JWKSURL != ""; shared && (cfg.Audience == "" || cfg.Issuer == "") {
		// Public keys are often an identity provider's, shared by many
		// applications: without aud and iss, a token it issued for any of
		// them logs in here.
		if cfg.RequireAudienceIssuer {
			return nil, errors.New("auth: public keys or a JWKS URL need both an audience and an issuer (required by configuration)")
		}
		v.log.Warn("USER TOKENS ARE NOT BOUND TO THIS APPLICATION: public keys or a JWKS URL are set without both an audience and an issuer, "+
			"so a token the same identity provider issued for another application logs in here; set the audience and the issuer, "+
			"and require them (see docs/operations.md)", logkey.Audience, cfg.Audience, logkey.Issuer, cfg.Issuer)
	}

	if cfg.PublicKeyFile != "" {
		data, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth: read key file: %w", err)
		}
		keys, skipped, err := parseKeyFile(data)
		if err != nil {
			return nil, fmt.Errorf("auth: key file %s: %w", cfg.PublicKeyFile, err)
		}
		for _, s := range skipped {
			v.log.Warn("key file: key skipped", logkey.File, cfg.PublicKeyFile, logkey.Reason, s)
		}
		if len(keys) == 0 {
			return nil, fmt.Errorf("auth: key file %s: no usable Ed25519 or RSA signing key", cfg.PublicKeyFile)
		}
		v.static = keys
	}
	if cfg.JWKSURL != "" {
		r, err := newRemoteKeys(cfg.JWKSURL, cfg.HTTPClient, v.log, now)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		if err := r.fetch(ctx); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		v.remote = r
	}

	// The accepted algorithms follow from the key sources; keyFor also
	// hands each algorithm only keys of its own type.
	var methods []string
	if len(v.secret) > 0 {
		methods = append(methods, AlgHS256)
	}
	if v.static != nil || v.remote != nil {
		methods = append(methods, AlgRS256, AlgEdDSA)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)

	if v.remote != nil {
		rctx, stop := context.WithCancel(context.Background())
		v.stop, v.done = stop, make(chan struct{})
		go func() {
			defer close(v.done)
			v.remote.run(rctx)
		}()
	}
	return v, nil
}

// Close stops the background refresh. The Verifier keeps verifying with the
// keys it has.
func (v *Verifier) Close() error {
	v.closeOnce.Do(func() {
		if v.stop != nil {
			v.stop()
			<-v.done
		}
	})
	return nil
}

// VerifyUser returns the user id token vouches for. Errors are
// *protocol.Error: token_expired for an expired token, unauthorized for
// anything else.
func (v *Verifier) VerifyUser(ctx context.Context, token string) (string, error) {
	user, _, err := v.VerifyUserUntil(ctx, token)
	return user, err
}

// VerifyUserUntil is VerifyUser that also returns when the token stops
// being accepted: its exp plus the leeway.
func (v *Verifier) VerifyUserUntil(ctx context.Context, token string) (string, time.Time, error) {
	if token == "" {
		return "", time.Time{}, unauthorized("missing user token")
	}
	if len(token) > MaxTokenBytes {
		return "", time.Time{}, unauthorized("user token too large")
	}
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		return v.keyFor(ctx, t)
	})
	if err != nil {
		v.log.Debug("user token refused", logkey.Err, err)
		return "", time.Time{}, refusal(err)
	}
	var until time.Time
	if c.ExpiresAt != nil { // always, as exp is required
		until = c.ExpiresAt.Add(v.leeway)
	}
	return c.Subject, until, nil
}

// Reasons keyFor refuses a token; jwt reports them as unverifiable.
var (
	errCrit  = errors.New("auth: critical header extensions not supported")
	errKid   = errors.New("auth: kid is not a string")
	errNoKey = errors.New("auth: no key for the token's algorithm and key id")
)

// keyFor picks the keys that may have signed t. The parser has already
// restricted t's algorithm to the configured ones; an HS256 token only ever
// gets the shared secret and a public-key token only keys of its own type, so
// a public key can never serve as an HMAC secret.
func (v *Verifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errCrit
	}
	var kid string
	if raw, ok := t.Header["kid"]; ok {
		if kid, ok = raw.(string); !ok {
			return nil, errKid
		}
	}
	alg := t.Method.Alg()
	switch alg {
	case AlgHS256:
		if len(v.secret) == 0 {
			return nil, errNoKey
		}
		return v.secret, nil
	case AlgRS256, AlgEdDSA:
	default:
		return nil, errNoKey
	}
	named, unnamed := v.match(alg, kid)
	if len(named) == 0 && kid != "" && v.remote != nil {
		v.remote.refreshForUnknownKid(ctx)
		named, unnamed = v.match(alg, kid)
	}
	keys := named
	if len(keys) == 0 {
		keys = unnamed
	}
	if len(keys) == 0 {
		return nil, errNoKey
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// match returns the keys for alg. With a kid, named are the keys with that
// id and unnamed those without any id (PEM keys), which a kid cannot rule
// out; without a kid, named is every key for alg.
func (v *Verifier) match(alg, kid string) (named, unnamed []jwt.VerificationKey) {
	var remote []publicKey
	if v.remote != nil {
		remote = v.remote.load()
	}
	for _, set := range [][]publicKey{v.static, remote} {
		for _, k := range set {
			switch {
			case k.alg != alg:
			case kid == "" || k.kid == kid:
				named = append(named, k.key)
			case k.kid == "":
				unnamed = append(unnamed, k.key)
			}
		}
	}
	return named, unnamed
}

// errSubject is a missing or unusable "sub".
var errSubject = errors.New(`auth: sub must be 1 to 256 printable bytes, not "." or ".."`)

// claims are the claims read from a token.
type claims struct {
	jwt.RegisteredClaims
}

// Validate implements jwt.ClaimsValidator.
func (c *claims) Validate() error {
	if !validSubject(c.Subject) {
		return errSubject
	}
	return nil
}

// validSubject reports whether sub can be a user id
// (protocol.ValidUserID): 1 to MaxSubjectBytes of printable UTF-8, not "."
// or "..".
func validSubject(sub string) bool { return protocol.ValidUserID(sub) }

// refusal maps a parse error to the protocol error the client sees. An
// expired token is token_expired only when nothing else is wrong with it:
// logging in again would not fix a wrong audience.
func refusal(err error) *protocol.Error {
	for _, r := range []struct {
		err error
		msg string
	}{
		{jwt.ErrTokenMalformed, "malformed user token"},
		{jwt.ErrTokenSignatureInvalid, "user token signature or algorithm not accepted"},
		{jwt.ErrTokenUnverifiable, "user token signed with an unknown key or algorithm"},
		{errSubject, "user token has no valid subject"},
		{jwt.ErrTokenRequiredClaimMissing, "user token lacks a required claim"},
		{jwt.ErrTokenInvalidAudience, "user token is for another audience"},
		{jwt.ErrTokenInvalidIssuer, "user token is from another issuer"},
		{jwt.ErrTokenNotValidYet, "user token not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "user token issued in the future"},
	} {
		if errors.Is(err, r.err) {
			return unauthorized(r.msg)
		}
	}
	if errors.Is(err, jwt.ErrTokenExpired) {
		return protocol.Errorf(protocol.ErrTokenExpired, "user token expired: log in again")
	}
	return unauthorized("user token refused")
}

func unauthorized(msg string) *protocol.Error {
	return protocol.Errorf(protocol.ErrUnauthorized, "%s", msg)
}
