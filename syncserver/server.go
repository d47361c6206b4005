package syncserver

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// Config configures a Server. Store is required; zero values elsewhere take
// the defaults.
type Config struct {
	Store Store
	// Bus fans updates out between instances; nil means in-process only.
	Bus Bus
	// Limits on carts; zero means cart.DefaultLimits.
	Limits cart.Limits
	// OriginPatterns are host patterns, besides the server's own host,
	// allowed to open the websocket from a browser, as in
	// websocket.AcceptOptions ("shop.example.com", "*.example.com"). They
	// ignore the scheme: prefer AllowedOrigins.
	OriginPatterns []string
	// AllowedOrigins are the browser origins, besides the server's own,
	// allowed to open the websocket: "scheme://host[:port]", compared
	// whole (an http:// page does not pass for https://); the host may
	// start with "*." for any subdomain. New checks them.
	AllowedOrigins []string
	// Heartbeat is the ping interval clients are told to use.
	Heartbeat time.Duration
	// MaxInflight bounds concurrent batches being applied; past it the
	// server answers "overloaded". Zero means 256.
	MaxInflight int
	// MaxHellos bounds the hellos handled at once (authentication, login,
	// subscription, snapshot). A hello past it waits up to 3 s for a slot,
	// then is answered "overloaded" with a random retry delay of 1 to 3 s.
	// Zero means 128.
	MaxHellos int
	// ShutdownSpread is the time over which Shutdown closes connections,
	// each at a random moment, asking each client to come back at a random
	// moment of the same length after it (see Shutdown). It is bounded by
	// half of what is left of Shutdown's context. Zero means 2s; negative
	// closes every connection at once, without a retry delay.
	ShutdownSpread time.Duration
	// SendQueue bounds each connection's queue of outgoing messages; a
	// connection that falls this far behind is dropped and re-syncs.
	SendQueue int
	// Users verifies user tokens; nil refuses every user token.
	Users UserVerifier
	// DefaultPolicy is the login merge policy when a login names none;
	// empty means cart.PolicyMerge.
	DefaultPolicy cart.Policy
	// GuestRetention is how long a guest cart is kept after its last
	// change; zero means 30 days.
	GuestRetention time.Duration
	// UserRetention is how long a user cart is kept after its last
	// change; zero keeps user carts.
	UserRetention time.Duration
	// IPLimits bound the connections, requests and new devices of one
	// client address; zero values take generous defaults.
	IPLimits IPLimits
	// APIKeys are the storefront backend's API keys, several at once so
	// that a key can be rotated: each opens /v1/backend/ and nothing else.
	// None: the backend API answers 401 to everything.
	APIKeys []string
	// CatalogOnly refuses adds of SKUs the catalog does not know; without
	// it they are taken with the details the client sends.
	CatalogOnly bool
	// CheckoutTTL is how long a checkout stays open; zero means 1 hour.
	CheckoutTTL time.Duration
	// Events records cart events in the outbox (webhooks and the feed).
	// It needs a Store that is an EventStore.
	Events bool
	// AbandonAfter is how long a cart with lines must go unchanged to be
	// abandoned, per kind (KindGuest, KindUser); a missing kind means 24h,
	// a negative value never.
	AbandonAfter map[string]time.Duration
	// Webhooks says a deliverer sends the events: they are written
	// pending. Without it they are written delivered (the feed only).
	Webhooks bool
	// EventRetention is how long events stay in the outbox once delivered,
	// coalesced or dead (pending ones stay until delivered, unless there
	// are no webhooks to deliver them); zero means 7
	// days, negative forever. The feed reaches back that far.
	EventRetention time.Duration
	// EventsWritten, when set, is called after a change that wrote events
	// commits (to wake a webhook deliverer up).
	EventsWritten func()
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Registerer receives the metrics; nil means a private registry.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Server is the sync server. It is an http.Handler.
type Server struct {
	cfg     Config
	store   Store
	bus     Bus
	lim     cart.Limits
	log     *slog.Logger
	now     func() time.Time
	tokens  tokens
	hub     *hub
	metrics *metrics
	ipl     *ipLimiter
	origins []origin
	mux     *http.ServeMux
	sem     chan struct{}
	hellos  *helloGate
	steps   *steps
	catalog *catalog
	events  EventStore // nil: no outbox
	apiKeys [][]byte

	stopCatalog func()        // ends the catalog's subscription and notifier
	stopGone    func()        // ends the gone carts' subscription
	stopBus     func()        // ends watchBus
	catalogNews chan []string // changed SKUs, for the notifier
	lossy       Lossy         // the bus, if it can lose pushes (watchBus)
	resend      *resender     // sends carts to connections again after a bus outage

	mu       sync.Mutex
	sessions map[*session]struct{}
	closing  bool
	wg       sync.WaitGroup
	draining atomic.Bool // /readyz answers draining; see Drain
	// userTombs: user carts may have expired (user retention is on, the
	// store kept a tombstone of one at the start, or a request met one
	// since), so a user's hello or request looks for one to start over
	// (reviveUser).
	userTombs atomic.Bool
	// What /readyz finds off, logged at most every healthLogEvery each.
	notReadyLog, degradedLog healthLog
}

// Drain makes /readyz answer 503 "draining" from now on, so that load
// balancers stop sending new connections before Shutdown closes the
// listener. Everything else goes on as before.
func (s *Server) Drain() { s.draining.Store(true) }

// New returns a server on the given store and bus.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("syncserver: Config.Store is required")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return nil, err
	}
	key, err := cfg.Store.Secret(ctx, secretDeviceTokens, seed)
	if err != nil {
		return nil, fmt.Errorf("load device token secret: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	if err := registerDegraded(cfg); err != nil {
		return nil, err
	}
	ipl, err := newIPLimiter(cfg.IPLimits, cfg.Now, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	origins, err := parseOrigins(cfg.AllowedOrigins)
	if err != nil {
		return nil, fmt.Errorf("syncserver: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		store:    cfg.Store,
		bus:      cfg.Bus,
		lim:      cfg.Limits,
		log:      cfg.Logger,
		now:      cfg.Now,
		tokens:   tokens{key: key},
		metrics:  m,
		ipl:      ipl,
		origins:  origins,
		sem:      make(chan struct{}, cfg.MaxInflight),
		hellos:   newHelloGate(cfg.MaxHellos),
		steps:    newSteps(),
		sessions: map[*session]struct{}{},
	}
	s.userTombs.Store(cfg.UserRetention > 0 || mayHaveTombstones(ctx, cfg.Store, KindUser))
	for _, k := range cfg.APIKeys {
		if len(k) < minAPIKey {
			return nil, fmt.Errorf("syncserver: an API key must be at least %d characters", minAPIKey)
		}
		sum := sha256.Sum256([]byte(k))
		s.apiKeys = append(s.apiKeys, sum[:])
	}
	if cfg.Events {
		es, ok := cfg.Store.(EventStore)
		if !ok {
			return nil, errors.New("syncserver: Config.Events needs a Store that keeps events")
		}
		s.events = es
	}
	s.catalog = newCatalog(cfg.Store, cfg.Now)
	s.hub = newHub(cfg.Bus, s.log, m)
	s.mux = s.routes()
	if err := s.watchCatalog(ctx); err != nil {
		return nil, fmt.Errorf("syncserver: subscribe to catalog changes: %w", err)
	}
	if err := s.watchGone(ctx); err != nil {
		if s.stopCatalog != nil {
			s.stopCatalog()
		}
		return nil, fmt.Errorf("syncserver: subscribe to gone carts: %w", err)
	}
	if lossy, ok := cfg.Bus.(Lossy); ok {
		s.lossy = lossy
		s.resend = newResender()
		stopLost, err := s.watchLost(ctx)
		if err != nil {
			s.stopGone()
			if s.stopCatalog != nil {
				s.stopCatalog()
			}
			return nil, fmt.Errorf("syncserver: subscribe to lost updates: %w", err)
		}
		bctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); s.watchBus(bctx, lossy) }()
		s.stopBus = func() { stop(); <-done; stopLost() }
	}
	return s, nil
}

// withDefaults fills in what cfg leaves out and checks the default merge
// policy.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Bus == nil {
		cfg.Bus = NewMemBus()
	}
	if cfg.Limits == (cart.Limits{}) {
		cfg.Limits = cart.DefaultLimits
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = protocol.HeartbeatMillis * time.Millisecond
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 256
	}
	if cfg.MaxHellos <= 0 {
		cfg.MaxHellos = 128
	}
	if cfg.ShutdownSpread == 0 {
		cfg.ShutdownSpread = 2 * time.Second
	}
	if cfg.SendQueue <= 0 {
		cfg.SendQueue = 128
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DefaultPolicy == "" {
		cfg.DefaultPolicy = cart.PolicyMerge
	}
	if !cfg.DefaultPolicy.Valid() {
		return cfg, fmt.Errorf("syncserver: unknown default merge policy %q", cfg.DefaultPolicy)
	}
	if cfg.GuestRetention <= 0 {
		cfg.GuestRetention = 30 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.CheckoutTTL <= 0 {
		cfg.CheckoutTTL = time.Hour
	}
	// A new checkout is a change of its cart, so a retention longer than
	// a checkout's life never expires a cart while its shopper pays.
	for _, r := range []struct {
		what string
		keep time.Duration
	}{{"guest", cfg.GuestRetention}, {"user", cfg.UserRetention}} {
		if r.keep > 0 && r.keep <= cfg.CheckoutTTL {
			return cfg, fmt.Errorf("syncserver: the %s carts' retention (%s) must be longer than a checkout's life (%s): a cart would expire while its shopper is paying", r.what, r.keep, cfg.CheckoutTTL)
		}
	}
	return cfg, nil
}

// registerDegraded registers a gauge for the store and the bus when they
// can work degraded (Degradable).
func registerDegraded(cfg Config) error {
	for _, c := range []struct {
		name string
		v    any
	}{{"store", cfg.Store}, {"bus", cfg.Bus}} {
		d, ok := c.v.(Degradable)
		if !ok {
			continue
		}
		g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cartsync_degraded", Help: "1 while a component works in a degraded mode (the Redis cache reading the store, the Redis bus not reaching other instances).",
			ConstLabels: prometheus.Labels{"component": c.name},
		}, func() float64 {
			if d.Degraded() != nil {
				return 1
			}
			return 0
		})
		if err := cfg.Registerer.Register(g); err != nil {
			return fmt.Errorf("register degraded gauge: %w", err)
		}
	}
	return nil
}

// ServeHTTP serves the sync endpoints. A /v1/ path with an empty or dot
// segment gets a typed 404, not the mux's bare redirect to another path.
// Segments are read as sent, escaped: a user id with slashes, path-escaped,
// is one segment however its slashes fall.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/") && uncleanPath(r.URL.EscapedPath()) {
		s.guard(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, protocol.Errorf(protocol.ErrInvalid, "no endpoint %s: a path segment is empty, . or ..", r.URL.Path))
		})(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Shutdown stops taking connections and closes the open ones, spread over
// Config.ShutdownSpread (bounded by half of what is left of ctx): each
// connection at a random moment of the spread, after it finishes the
// message it is processing (so every applied batch is acknowledged). Before
// closing, it tells each client, in a going_away error, to come back after a
// random moment of the spread that follows the last close: by then this
// instance is gone and the clients reach its successor, or other instances,
// evenly spread rather than all at once. It waits for the connections to
// end or for ctx; when ctx ends first, the rest are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.stopGone != nil {
		defer s.stopGone()
	}
	if s.stopCatalog != nil {
		defer s.stopCatalog()
	}
	if s.stopBus != nil {
		defer s.stopBus()
	}
	defer s.steps.close()
	s.mu.Lock()
	s.closing = true
	open := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		open = append(open, ss)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()

	spread := s.cfg.ShutdownSpread
	if dl, ok := ctx.Deadline(); ok {
		spread = min(spread, time.Until(dl)/2)
	}
	plan := farewells(len(open), spread, mrand.Float64)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for i, f := range plan {
		if wait := f.at - time.Since(start); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-done:
				// Every connection ended by itself meanwhile.
				return nil
			case <-ctx.Done():
				// Out of time: the rest now, still spread on return.
				for _, f := range plan[i:] {
					open[f.conn].shutdown(f.retryAfter)
				}
				return ctx.Err()
			}
		}
		open[f.conn].shutdown(f.retryAfter)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// farewell is when Shutdown closes one connection, counted from its start,
// and how long that client is asked to wait before it reconnects.
type farewell struct {
	conn       int // index of the connection
	at         time.Duration
	retryAfter time.Duration
}

// minRetryAfter is the least wait asked of a client at shutdown.
const minRetryAfter = 100 * time.Millisecond

// farewells plans the closing of n connections over spread: each at a
// uniformly random moment of [0, spread), its client asked to come back at a
// uniformly random moment of [spread, 2·spread), independently. In order of
// closing. A spread of zero or less closes all at once with no retry delay.
func farewells(n int, spread time.Duration, rnd func() float64) []farewell {
	out := make([]farewell, n)
	for i := range out {
		out[i].conn = i
		if spread <= 0 {
			continue
		}
		out[i].at = time.Duration(rnd() * float64(spread))
		back := spread + time.Duration(rnd()*float64(spread))
		out[i].retryAfter = max(back-out[i].at, minRetryAfter)
	}
	slices.SortFunc(out, func(a, b farewell) int { return cmp.Compare(a.at, b.at) })
	return out
}

// Ready reports whether the store answers: the server takes and
// acknowledges edits whenever it does. A cache or bus in trouble does not
// make it unready (see Degraded).
func (s *Server) Ready(ctx context.Context) error {
	if err := s.store.Ping(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Degradable is implemented by a Store or Bus that keeps working without
// its backend (the Redis cache and bus), in a degraded mode.
type Degradable interface {
	// Degraded reports, without blocking, what is degraded; nil means
	// nothing.
	Degraded() error
}

// Degraded lists, without blocking, what works in a degraded mode: the
// cache reading the store, the bus not reaching other instances.
func (s *Server) Degraded() []string {
	var out []string
	for _, c := range []any{s.store, s.bus} {
		if d, ok := c.(Degradable); ok {
			if err := d.Degraded(); err != nil {
				out = append(out, err.Error())
			}
		}
	}
	return out
}

// UserVerifier checks a user token from the storefront and returns the user
// id it vouches for. Errors are *protocol.Error (unauthorized,
// token_expired).
type UserVerifier interface {
	VerifyUser(ctx context.Context, token string) (string, error)
}

// ExpiringUserVerifier is a UserVerifier whose tokens expire. With one, the
// server ends a user's access on connections opened with a token when the
// token expires: the client is told token_expired, as at hello.
type ExpiringUserVerifier interface {
	UserVerifier
	// VerifyUserUntil is VerifyUser that also returns when the token
	// stops being accepted (zero for never).
	VerifyUserUntil(ctx context.Context, token string) (user string, until time.Time, err error)
}

// authenticate resolves a device token (issuing one when empty) and an
// optional user token to the identity they grant: the device's guest cart,
// or the user's cart when a valid user token is given.
func (s *Server) authenticate(ctx context.Context, deviceToken, userToken string) (Identity, *protocol.Error) {
	if deviceToken == "" {
		if perr := s.allowNewDevice(ctx); perr != nil {
			return Identity{}, perr
		}
	}
	id, perr := s.authenticateDevice(deviceToken)
	if perr != nil || userToken == "" {
		return id, perr
	}
	refused := func(pe *protocol.Error) (Identity, *protocol.Error) {
		if pe.Code == protocol.ErrUnauthorized {
			named := *pe
			named.Token = protocol.TokenUser
			pe = &named
		}
		return Identity{}, pe
	}
	if s.cfg.Users == nil {
		return refused(protocol.Errorf(protocol.ErrUnauthorized, "this server does not accept user tokens"))
	}
	var user string
	var err error
	if ev, ok := s.cfg.Users.(ExpiringUserVerifier); ok {
		user, id.Expires, err = ev.VerifyUserUntil(ctx, userToken)
	} else {
		user, err = s.cfg.Users.VerifyUser(ctx, userToken)
	}
	if err != nil {
		var pe *protocol.Error
		if errors.As(err, &pe) {
			return refused(pe)
		}
		return refused(protocol.Errorf(protocol.ErrUnauthorized, "user token refused"))
	}
	id.User = user
	id.CartID = UserCartID(user)
	return id, nil
}

func (s *Server) authenticateDevice(deviceToken string) (Identity, *protocol.Error) {
	var id Identity
	if deviceToken == "" {
		deviceToken = s.tokens.issue()
		id.Token = deviceToken
	}
	dev, link, perr := s.tokens.check(deviceToken)
	if perr != nil {
		return Identity{}, perr
	}
	id.Device, id.Link = dev, link
	id.CartID = GuestCartID(dev)
	return id, nil
}

// rotateDevice issues a new device token in place of the one of old (a
// device whose guest cart was merged at a login, or expired), linked to
// old's device: its identity.
func (s *Server) rotateDevice(old Identity) Identity {
	tok := s.tokens.issueAfter(old.Device)
	id, _ := s.authenticateDevice(tok)
	id.Token = tok
	return id
}
