package webhook

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/syncserver"
)

// Config configures a Deliverer. Zero (or negative) durations and counts
// mean the defaults.
type Config struct {
	// Store is the outbox. Required.
	Store syncserver.EventStore
	// URL is the storefront's endpoint, an http or https URL. Required.
	URL string
	// Secrets sign the deliveries: the current secret, or while rotating
	// the new and the old one (see the package documentation). Required.
	Secrets []string
	// Client sends the requests; nil means a client with a 10 s timeout
	// that does not follow redirects. A client that follows redirects makes
	// the redirect's target answer for the endpoint.
	Client *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil means a private registry.
	Registerer prometheus.Registerer
	// RetryWindow is how long an event's delivery is tried, counted from
	// its first attempt (or the first after a RetryEvent), not from the
	// event's creation: an attempt that fails later than this makes the
	// event dead (default 24 h).
	RetryWindow time.Duration
	// BackoffBase and BackoffCap bound the wait before the attempt that
	// follows a failed one: a random duration between zero and BackoffBase
	// times 2 to the power of the attempts that failed before, at most
	// BackoffCap (defaults 5 s and 1 h). An answer's Retry-After header,
	// up to BackoffCap, lengthens the wait.
	BackoffBase time.Duration
	BackoffCap  time.Duration
	// Lease is how long a claimed event is reserved for this deliverer
	// (default 1 min). Requests end a tenth of the lease before it does,
	// and none starts unless the client's timeout fits in what is left.
	Lease time.Duration
	// Batch is the most events claimed at once (default 100), and no
	// more than Concurrency are.
	Batch int
	// Concurrency is the most requests in flight (default 8).
	Concurrency int
	// PollInterval is how long Run waits, after a batch that was not full,
	// before it claims again unless Kick wakes it (default 500 ms).
	PollInterval time.Duration
}

// ErrRunning is returned by Run while another Run of the same Deliverer has
// not returned.
var ErrRunning = errors.New("webhook: deliverer already running")

// Deliverer sends the outbox's events to the endpoint. Several deliverers,
// on one instance or several, may share a store.
type Deliverer struct {
	cfg    Config
	keys   [][]byte
	margin time.Duration // requests end this long before the lease
	log    *slog.Logger
	m      *metrics
	kick   chan struct{}

	running atomic.Bool

	// countEvery is how often the pending and dead gauges are refreshed.
	countEvery time.Duration
	// jitter returns a random duration in [0, n].
	jitter func(n time.Duration) time.Duration
}

// DefaultLease is Config.Lease when zero. An instance that dies while it
// holds a lease leaves the event, and its cart's later events, waiting
// until the lease ends: then any instance sends it again.
const DefaultLease = time.Minute

// Defaults of Config.
const (
	defaultTimeout      = 10 * time.Second
	defaultRetryWindow  = 24 * time.Hour
	defaultBackoffBase  = 5 * time.Second
	defaultBackoffCap   = time.Hour
	defaultBatch        = 100
	defaultConcurrency  = 8
	defaultPollInterval = 500 * time.Millisecond
)

const (
	// countEvery is how often Run refreshes the pending and dead gauges.
	countEvery = 5 * time.Second
	// storeTimeout bounds recording an attempt's outcome, which is done
	// even while Run is stopping.
	storeTimeout = 10 * time.Second
	// maxErrorWait is the longest wait after failed claims, unless
	// PollInterval is longer.
	maxErrorWait = 30 * time.Second
	// excerptRead is how much of an answer's body is read for LastError;
	// drainLimit how much more is read so the connection can be reused.
	excerptRead = 512
	drainLimit  = 64 << 10
	// maxExcerpt is the longest excerpt of an answer's body in LastError.
	maxExcerpt = 200
)

// New returns a deliverer; Run starts it. It fails without a store, a URL
// or a valid secret (ErrBadSecret), and if the metrics cannot be registered
// (as when another Deliverer registered them on the same Registerer).
func New(cfg Config) (*Deliverer, error) {
	if cfg.Store == nil {
		return nil, errors.New("webhook: Config.Store is required")
	}
	if cfg.URL == "" {
		return nil, errors.New("webhook: Config.URL is required")
	}
	// The URL may hold credentials: errors do not quote it.
	if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("webhook: Config.URL is not an http or https URL")
	}
	keys, err := parseSecrets(cfg.Secrets)
	if err != nil {
		return nil, err
	}
	setDefault(&cfg.RetryWindow, defaultRetryWindow)
	setDefault(&cfg.BackoffBase, defaultBackoffBase)
	setDefault(&cfg.BackoffCap, defaultBackoffCap)
	setDefault(&cfg.Lease, DefaultLease)
	setDefault(&cfg.Batch, defaultBatch)
	setDefault(&cfg.Concurrency, defaultConcurrency)
	setDefault(&cfg.PollInterval, defaultPollInterval)
	if cfg.BackoffCap < cfg.BackoffBase {
		return nil, fmt.Errorf("webhook: Config.BackoffCap (%s) is less than BackoffBase (%s)", cfg.BackoffCap, cfg.BackoffBase)
	}
	if cfg.Client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.Concurrency
		cfg.Client = &http.Client{
			Transport: tr,
			Timeout:   defaultTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	margin := cfg.Lease / 10
	if cfg.Lease-margin <= cfg.Client.Timeout {
		return nil, fmt.Errorf("webhook: Config.Lease (%s) less a tenth must exceed the client's timeout (%s)", cfg.Lease, cfg.Client.Timeout)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("webhook: metrics: %w", err)
	}
	return &Deliverer{
		cfg:        cfg,
		keys:       keys,
		margin:     margin,
		log:        cfg.Logger,
		m:          m,
		kick:       make(chan struct{}, 1),
		countEvery: countEvery,
		jitter:     func(n time.Duration) time.Duration { return rand.N(n + 1) },
	}, nil
}

// setDefault sets *v to def if it is not positive.
func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Kick makes Run claim due events now rather than at the end of its poll
// interval; the core calls it after committing events. It never blocks, and
// does nothing on a nil Deliverer.
func (d *Deliverer) Kick() {
	if d == nil {
		return
	}
	select {
	case d.kick <- struct{}{}:
	default: // a kick is already pending
	}
}

// Run delivers events until ctx ends, then returns ctx's error, or
// ErrRunning if the deliverer is already running. It claims a batch of due
// events (at most Batch and Concurrency) when a request is free and none is waiting, and
// sends them as requests free up, up to Concurrency at once: a slow answer
// holds up its own cart's events (the store gives none of a cart whose
// oldest is in flight), not the others'. After a claim that came back
// short it claims again after PollInterval, a Kick, or the end of a
// request (which may free its cart's next event). Store errors are logged
// and retried with a growing wait. When ctx ends, requests in flight are
// cancelled without counting as attempts: their events, and those claimed
// and not sent, stay leased until the lease ends and are then claimed
// again.
func (d *Deliverer) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer d.running.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { d.countLoop(ctx) })
	slots := make(chan struct{}, d.cfg.Concurrency) // a token per request in flight
	ended := make(chan struct{}, 1)                 // a request ended
	var queue []claimed                             // claimed, not sent yet, in seq order
	more := true                                    // events may be due that no claim has returned
	failures := 0
	for {
		// Send what is claimed, as far as requests are free.
		for len(queue) > 0 && tryAcquire(slots) {
			c := queue[0]
			queue = queue[1:]
			wg.Go(func() {
				defer func() {
					<-slots
					select {
					case ended <- struct{}{}:
					default:
					}
				}()
				d.deliver(ctx, c.ev, c.until)
			})
		}
		wait := d.cfg.PollInterval
		if more && len(queue) == 0 && len(slots) < cap(slots) {
			evs, until, err := d.claim(ctx)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err == nil {
				failures = 0
				for _, ev := range evs {
					queue = append(queue, claimed{ev, until})
				}
				// A full batch may have left more: claim again once
				// these are out.
				more = len(evs) >= min(d.cfg.Batch, d.cfg.Concurrency)
				continue
			}
			failures++
			for i := 0; i < failures && wait < maxErrorWait; i++ {
				wait *= 2
			}
			wait = max(min(wait, maxErrorWait), d.cfg.PollInterval)
			d.log.Warn("webhook: claiming events failed", logkey.Err, err, logkey.RetryIn, wait.Round(time.Millisecond).String())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-d.kick:
			t.Stop()
		case <-ended:
			t.Stop()
		case <-t.C:
		}
		more = true
	}
}

// claimed is an event claimed for sending, and when its request must end.
type claimed struct {
	ev    syncserver.Event
	until time.Time
}

// tryAcquire takes a slot if one is free.
func tryAcquire(slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// claim claims a batch of due events, each cart's oldest only, in seq
// order, and the time their requests must end by: a tenth of the lease
// before the lease does, a margin for the instances' clocks (once the
// lease ends, another instance may send the event, then the cart's next
// one, which a late request of this instance must not follow).
func (d *Deliverer) claim(ctx context.Context) ([]syncserver.Event, time.Time, error) {
	now := d.cfg.Now()
	// No more than can be in flight at once: a claimed event waits for a
	// request at most while one request runs, well within its lease (a
	// batch of 100 behind 8 slow requests ran out of lease, and was
	// skipped until the lease ended).
	evs, err := d.cfg.Store.ClaimEvents(ctx, now, d.cfg.Lease, min(d.cfg.Batch, d.cfg.Concurrency))
	if err != nil {
		return nil, time.Time{}, err
	}
	slices.SortFunc(evs, func(a, b syncserver.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	// The store returns only each cart's oldest pending event, and none of
	// a cart whose oldest is leased (in flight); should it return more,
	// only the oldest is sent, keeping the cart's order.
	carts := make(map[string]bool, len(evs))
	out := evs[:0]
	for _, ev := range evs {
		if !carts[ev.CartID] {
			carts[ev.CartID] = true
			out = append(out, ev)
		}
	}
	return out, now.Add(d.cfg.Lease - d.margin), nil
}

// deliver makes one attempt to deliver ev, which must end before until, and
// records its outcome.
func (d *Deliverer) deliver(ctx context.Context, ev syncserver.Event, until time.Time) {
	body, err := Body(ev)
	if err != nil {
		// It can never be sent: dead at once.
		d.failed(ctx, ev, attempt{lastErr: "cannot encode the event: " + err.Error()}, true)
		return
	}
	left := until.Sub(d.cfg.Now())
	if left <= d.cfg.Client.Timeout || left <= 0 {
		// The answer could come after the lease: leave the event leased,
		// to be claimed again when the lease ends.
		d.log.Debug("webhook: lease too short to send", logkey.Event, ev.ID)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, left)
	a := d.send(rctx, ev, body)
	cancel()
	switch {
	case a.status >= 200 && a.status < 300:
		d.delivered(ctx, ev)
	case ctx.Err() != nil:
		// Stopping: not the endpoint's fault, so not an attempt.
	default:
		d.failed(ctx, ev, a, false)
	}
}

// attempt is the outcome of a request.
type attempt struct {
	status     int    // the answer's status; 0 if none came
	lastErr    string // why it failed, for Event.LastError
	retryAfter time.Duration
}

// send posts ev's body to the endpoint, signed.
func (d *Deliverer) send(ctx context.Context, ev syncserver.Event, body []byte) attempt {
	ts := strconv.FormatInt(d.cfg.Now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return attempt{lastErr: "cannot make the request"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cartsync-webhook")
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, sign(d.keys, ev.ID, ts, body))
	resp, err := d.cfg.Client.Do(req)
	if err != nil {
		return attempt{lastErr: describe(err)}
	}
	defer resp.Body.Close()
	a := attempt{status: resp.StatusCode}
	var head []byte
	if a.status < 200 || a.status >= 300 {
		head, _ = io.ReadAll(io.LimitReader(resp.Body, excerptRead))
		a.lastErr = "HTTP " + strconv.Itoa(a.status)
		if s := excerpt(head); s != "" {
			a.lastErr += ": " + s
		}
		a.retryAfter = retryAfter(resp.Header.Get("Retry-After"), d.cfg.Now())
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	return a
}

// delivered records ev's delivery.
func (d *Deliverer) delivered(ctx context.Context, ev syncserver.Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	now := d.cfg.Now()
	if err := d.cfg.Store.EventDelivered(ctx, ev.Seq, now); err != nil {
		// The event will be sent again when its lease ends.
		d.log.Warn("webhook: recording a delivery failed", logkey.Event, ev.ID, logkey.Type, ev.Type, logkey.Err, err)
		return
	}
	d.m.delivered.Inc()
	if ev.Attempts > 0 {
		d.m.retried.Inc()
	}
	d.m.latency.Observe(max(now.Sub(ev.At), 0).Seconds())
}

// failed records a failed attempt to deliver ev; the event is dead if dead
// is set or the retry window has passed since the series of attempts began
// (ev.TriedSince; ev.At if the store did not set it).
func (d *Deliverer) failed(ctx context.Context, ev syncserver.Event, a attempt, dead bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	now := d.cfg.Now()
	since := ev.TriedSince
	if since.IsZero() {
		since = ev.At
	}
	dead = dead || now.Sub(since) > d.cfg.RetryWindow
	wait := d.backoff(ev.Attempts)
	if a.retryAfter > wait {
		wait = min(a.retryAfter, d.cfg.BackoffCap)
	}
	d.m.failed.Inc()
	if err := d.cfg.Store.EventFailed(ctx, ev.Seq, now.Add(wait), a.lastErr, dead); err != nil {
		d.log.Warn("webhook: recording a failed attempt failed", logkey.Event, ev.ID, logkey.Type, ev.Type, logkey.Err, err)
		return
	}
	attrs := []any{"event", ev.ID, "type", ev.Type, "attempt", ev.Attempts + 1, "status", a.status}
	if a.status == 0 {
		// No answer, so no body: the error is the client's.
		attrs = append(attrs, "err", a.lastErr)
	}
	if dead {
		d.m.dead.Inc()
		d.log.Warn("webhook: delivery failed, event dead", attrs...)
		return
	}
	d.log.Warn("webhook: delivery failed", append(attrs, logkey.RetryIn, wait.Round(time.Millisecond).String())...)
}

// backoff returns the wait after an attempt that followed failed failed
// attempts: full jitter under BackoffBase·2^failed, capped at BackoffCap.
func (d *Deliverer) backoff(failed int) time.Duration {
	bound := d.cfg.BackoffBase
	for i := 0; i < failed && bound < d.cfg.BackoffCap; i++ {
		bound *= 2
	}
	return d.jitter(min(bound, d.cfg.BackoffCap))
}

// countLoop refreshes the pending and dead gauges until ctx ends.
func (d *Deliverer) countLoop(ctx context.Context) {
	t := time.NewTicker(d.countEvery)
	defer t.Stop()
	for {
		counts, err := d.cfg.Store.EventCounts(ctx)
		switch {
		case err == nil:
			d.m.pending.Set(float64(counts[syncserver.EventPending]))
			d.m.deadNow.Set(float64(counts[syncserver.EventDead]))
		case ctx.Err() == nil:
			d.log.Debug("webhook: counting events failed", logkey.Err, err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// describe returns why a request got no answer, without the URL (which may
// hold credentials).
func describe(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	return truncate("request failed: " + err.Error())
}

// excerpt returns the start of an answer's body as one line of printable
// text, for LastError.
func excerpt(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, s)
	return truncate(strings.Join(strings.Fields(s), " "))
}

// truncate shortens s to at most maxExcerpt bytes, on a rune boundary.
func truncate(s string) string {
	if len(s) <= maxExcerpt {
		return s
	}
	i := maxExcerpt
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// retryAfter returns the wait a Retry-After header asks for, in seconds or
// as an HTTP date; 0 if none.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
