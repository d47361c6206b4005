package syncserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cartsync/cartsync/shared/protocol"
)

// IPLimits bound what one client address may do, so that one client cannot
// take the server's connections, request handling or device tokens from
// everyone else. An address is the peer's IP (RemoteAddr), or the one a
// trusted proxy forwarded; IPv6 addresses count per /64, the block one
// subscriber usually holds. Zero fields take the defaults, which are
// generous enough for a load test of a thousand clients from one address;
// a negative rate or count turns that limit off.
type IPLimits struct {
	// MaxConns bounds the open websockets of one address; 0 means 2000.
	MaxConns int
	// Rate is the sustained rate of HTTP requests (websocket upgrades
	// included) of one address, per second, and Burst how many it may
	// make at once: a token bucket. 0 means 100 per second and 2000.
	Rate  float64
	Burst int
	// DeviceRate and DeviceBurst bound device tokens issued to one
	// address (POST /v1/devices, and hello without a device token): 0
	// means 10 per second and 1000.
	DeviceRate  float64
	DeviceBurst int
	// EditRate and EditBurst bound the edits of one address: each op of a
	// push or of an HTTP ops request counts, and a sync one more. 0 means
	// 200 per second and 2000: a shop's worth of shoppers behind one
	// address, each far below one edit a second, and a device's outbox
	// sent after days offline. Past it the push is refused rate_limited
	// (retryable), and nothing of it applied.
	EditRate  float64
	EditBurst int
	// BodyTimeout bounds the time to receive a request body; 0 means 30s.
	BodyTimeout time.Duration
	// TrustedProxies are reverse proxies whose X-Forwarded-For header is
	// believed: for a request from one of them, the client address is the
	// last one in the header that is not itself a trusted proxy. Empty
	// means the header is ignored and the address is RemoteAddr.
	TrustedProxies []netip.Prefix
}

// Defaults of IPLimits.
const (
	defaultMaxConns    = 2000
	defaultRate        = 100
	defaultBurst       = 2000
	defaultDeviceRate  = 10
	defaultDeviceBurst = 1000
	defaultEditRate    = 200
	defaultEditBurst   = 2000
	defaultBodyTimeout = 30 * time.Second
	// connRetryAfter is the delay suggested to a client over its
	// connection limit: no bucket says when a connection will close.
	connRetryAfter = 2 * time.Second
	// sweepEvery is how often addresses at rest are forgotten.
	sweepEvery = time.Minute
)

func (l IPLimits) withDefaults() IPLimits {
	if l.MaxConns == 0 {
		l.MaxConns = defaultMaxConns
	}
	if l.Rate == 0 {
		l.Rate = defaultRate
	}
	if l.Burst <= 0 {
		l.Burst = defaultBurst
	}
	if l.DeviceRate == 0 {
		l.DeviceRate = defaultDeviceRate
	}
	if l.DeviceBurst <= 0 {
		l.DeviceBurst = defaultDeviceBurst
	}
	if l.EditRate == 0 {
		l.EditRate = defaultEditRate
	}
	if l.EditBurst <= 0 {
		l.EditBurst = defaultEditBurst
	}
	if l.BodyTimeout <= 0 {
		l.BodyTimeout = defaultBodyTimeout
	}
	return l
}

// bucket is a token bucket; the zero bucket is full.
type bucket struct {
	tokens float64
	at     time.Time
}

// take takes n tokens at now, refilling rate per second up to burst. There must be one: n of them may leave the bucket in debt, paid
// back before the next take, so that a push of many ops waits for one token
// as a push of one does (waiting for n, it would rarely find them while
// other clients of the address take each token as it comes). If there is
// none it takes nothing and returns how long until there is.
func (b *bucket) take(now time.Time, n int, rate float64, burst int) (bool, time.Duration) {
	if rate < 0 {
		return true, 0
	}
	b.fill(now, rate, burst)
	if b.tokens >= 1 {
		b.tokens -= float64(max(n, 1)) // each counts, even past the burst
		return true, 0
	}
	wait := time.Duration(math.Ceil((1 - b.tokens) / rate * float64(time.Second)))
	return false, max(wait, time.Millisecond)
}

func (b *bucket) fill(now time.Time, rate float64, burst int) {
	if b.at.IsZero() {
		b.tokens, b.at = float64(burst), now
		return
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(float64(burst), b.tokens+d.Seconds()*rate)
		b.at = now
	}
}

// full reports whether the bucket has refilled completely by now.
func (b *bucket) full(now time.Time, rate float64, burst int) bool {
	return rate < 0 || b.at.IsZero() || b.tokens+now.Sub(b.at).Seconds()*rate >= float64(burst)
}

// addrState is what the limiter keeps about one address.
type addrState struct {
	conns    int
	requests bucket
	devices  bucket
	edits    bucket
}

// ipLimiter enforces IPLimits.
type ipLimiter struct {
	cfg IPLimits
	now func() time.Time

	mu        sync.Mutex
	addrs     map[netip.Addr]*addrState
	lastSweep time.Time

	refused *prometheus.CounterVec
}

func newIPLimiter(cfg IPLimits, now func() time.Time, reg prometheus.Registerer) (*ipLimiter, error) {
	l := &ipLimiter{cfg: cfg.withDefaults(), now: now, addrs: map[netip.Addr]*addrState{}}
	l.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cartsync_limited_total",
		Help: "Requests, pushes and connections refused by a per-address limit, by limit (connections, requests, devices, edits).",
	}, []string{"limit"})
	tracked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cartsync_limited_addresses",
		Help: "Client addresses (IPv4, or IPv6 /64) the per-address limits keep state for.",
	}, func() float64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		return float64(len(l.addrs))
	})
	for _, c := range []prometheus.Collector{l.refused, tracked} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, limit := range []string{"connections", "requests", "devices", "edits"} {
		l.refused.WithLabelValues(limit)
	}
	return l, nil
}

// stateLocked returns addr's state, creating it, and forgets addresses at
// rest now and then.
func (l *ipLimiter) stateLocked(addr netip.Addr, now time.Time) *addrState {
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.lastSweep = now
		for a, st := range l.addrs {
			if st.conns == 0 && st.requests.full(now, l.cfg.Rate, l.cfg.Burst) && st.devices.full(now, l.cfg.DeviceRate, l.cfg.DeviceBurst) &&
				st.edits.full(now, l.cfg.EditRate, l.cfg.EditBurst) {
				delete(l.addrs, a)
			}
		}
	}
	st := l.addrs[addr]
	if st == nil {
		st = &addrState{}
		l.addrs[addr] = st
	}
	return st
}

// limited is the error for a refusal: retryable, after wait.
func limited(wait time.Duration, format string, args ...any) *protocol.Error {
	e := protocol.Errorf(protocol.ErrRateLimited, format, args...)
	e.RetryAfterMS = int(max(1, (wait+time.Millisecond-1)/time.Millisecond))
	return e
}

// allowRequest takes a request token of addr.
func (l *ipLimiter) allowRequest(addr netip.Addr) *protocol.Error {
	return l.take(addr, 1, "requests", "requests", func(st *addrState) *bucket { return &st.requests }, l.cfg.Rate, l.cfg.Burst)
}

// allowDevice takes a device-issuance token of addr.
func (l *ipLimiter) allowDevice(addr netip.Addr) *protocol.Error {
	return l.take(addr, 1, "devices", "new devices", func(st *addrState) *bucket { return &st.devices }, l.cfg.DeviceRate, l.cfg.DeviceBurst)
}

// allowEdits takes n edit tokens of addr: the ops of a push, 1 for a sync.
func (l *ipLimiter) allowEdits(addr netip.Addr, n int) *protocol.Error {
	if l.cfg.EditRate < 0 {
		return nil // off: not even the lock, on every push
	}
	return l.take(addr, n, "edits", "edits", func(st *addrState) *bucket { return &st.edits }, l.cfg.EditRate, l.cfg.EditBurst)
}

// take takes n tokens from the bucket of addr that pick names; limit names
// it in the metric, what in the error.
func (l *ipLimiter) take(addr netip.Addr, n int, limit, what string, pick func(*addrState) *bucket, rate float64, burst int) *protocol.Error {
	now := l.now()
	l.mu.Lock()
	ok, wait := pick(l.stateLocked(addr, now)).take(now, n, rate, burst)
	l.mu.Unlock()
	if !ok {
		l.refused.WithLabelValues(limit).Inc()
		return limited(wait, "too many %s from your address; retry in %s", what, wait.Round(time.Millisecond))
	}
	return nil
}

// acquireConn counts an open connection of addr; release uncounts it.
func (l *ipLimiter) acquireConn(addr netip.Addr) (release func(), perr *protocol.Error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stateLocked(addr, now)
	if l.cfg.MaxConns > 0 && st.conns >= l.cfg.MaxConns {
		l.refused.WithLabelValues("connections").Inc()
		return nil, limited(connRetryAfter, "your address has %d connections open, the most allowed", st.conns)
	}
	st.conns++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			// The state stays while conns > 0: the sweep skips it.
			st.conns--
		})
	}, nil
}

// limitKey is the address limits count under: IPv4 as is, IPv6 by /64.
func limitKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		return netip.PrefixFrom(a, 64).Masked().Addr()
	}
	return a
}

// clientAddr is the address of r's client: RemoteAddr, or, when that is a
// trusted proxy, the last X-Forwarded-For entry that is not. An unreadable
// address is the zero Addr (one shared bucket).
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if len(trusted) == 0 || !isTrusted(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // a hop we cannot read: trust nothing before it
		}
		if a = a.Unmap(); !isTrusted(a) {
			return a
		}
	}
	return addr
}

type ctxKeyAddr struct{}

// requestAddr is the limit key of the request's client, as guard found it.
func requestAddr(ctx context.Context) netip.Addr {
	a, _ := ctx.Value(ctxKeyAddr{}).(netip.Addr)
	return a
}

// guard applies the per-address request rate to a route and remembers the
// client's address for the connection and device limits.
func (s *Server) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		addr := limitKey(clientAddr(r, s.ipl.cfg.TrustedProxies))
		if perr := s.ipl.allowRequest(addr); perr != nil {
			s.httpError(w, perr)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKeyAddr{}, addr)))
	}
}

// guardKeyed is guard for the backend's routes: a request with a valid API
// key goes on without taking a request token; any other is held to the
// rate (a key guessed at is throttled) and then refused by next.
func (s *Server) guardKeyed(next http.HandlerFunc) http.HandlerFunc {
	limited := s.guard(next)
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !s.validAPIKey(strings.TrimSpace(tok)) {
			limited(w, r)
			return
		}
		addr := limitKey(clientAddr(r, s.ipl.cfg.TrustedProxies))
		next(w, r.WithContext(context.WithValue(r.Context(), ctxKeyAddr{}, addr)))
	}
}

// allowNewDevice takes a device-issuance token of the request's client.
func (s *Server) allowNewDevice(ctx context.Context) *protocol.Error {
	return s.ipl.allowDevice(requestAddr(ctx))
}

// errBodyTimeout means the client did not send its body in time.
var errBodyTimeout = errors.New("syncserver: request body not received in time")

// readBody reads a request body of at most limit bytes within the
// BodyTimeout, so that a client trickling its body cannot hold a request
// open. Errors are *protocol.Error.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *protocol.Error) {
	rc := http.NewResponseController(w)
	deadlineSet := rc.SetReadDeadline(time.Now().Add(s.ipl.cfg.BodyTimeout)) == nil
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		// Not worth reading the rest: the connection closes after the
		// answer, and the deadline stays so that nothing waits for
		// the body that did not come.
		w.Header().Set("Connection", "close")
	} else if deadlineSet {
		// A deadline left behind would cancel the request's context
		// once it passed, while the handler is still at work.
		_ = rc.SetReadDeadline(time.Time{})
	}
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return body, nil
	case errors.As(err, &mbe):
		return nil, protocol.Errorf(protocol.ErrTooLarge, "body exceeds %d bytes", limit)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return nil, protocol.Errorf(protocol.ErrMalformed, "%v (%s)", errBodyTimeout, s.ipl.cfg.BodyTimeout)
	}
	return nil, protocol.Errorf(protocol.ErrMalformed, "could not read the body: %v", err)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// String describes the limits for the start-up log.
func (l IPLimits) String() string {
	l = l.withDefaults()
	return fmt.Sprintf("conns %d, requests %g/s burst %d, devices %g/s burst %d, body %s, %d trusted proxies",
		l.MaxConns, l.Rate, l.Burst, l.DeviceRate, l.DeviceBurst, l.BodyTimeout, len(l.TrustedProxies))
}
