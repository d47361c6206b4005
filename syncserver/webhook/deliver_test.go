package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cartsync/cartsync/syncserver"
)

// waitTime bounds every wait for a condition; the machine may be busy.
const waitTime = 30 * time.Second

// waitFor waits until cond holds, failing the test after waitTime.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockedBuffer collects logs written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testConfig returns a configuration for tests: short backoffs and polls, a
// 2 s client timeout, logs in the returned buffer and metrics in the
// returned registry.
func testConfig(store syncserver.EventStore, url string) (Config, *prometheus.Registry, *lockedBuffer) {
	reg := prometheus.NewRegistry()
	logs := &lockedBuffer{}
	return Config{
		Store:        store,
		URL:          url,
		Secrets:      []string{testSecret},
		Client:       &http.Client{Timeout: 2 * time.Second},
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:   reg,
		BackoffBase:  10 * time.Millisecond,
		BackoffCap:   100 * time.Millisecond,
		Lease:        5 * time.Second,
		PollInterval: 10 * time.Millisecond,
	}, reg, logs
}

// start runs d until the test ends, then checks that Run returned
// context.Canceled.
func start(t testing.TB, d *Deliverer) {
	t.Helper()
	d.countEvery = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
}

// newDeliverer returns a deliverer of cfg, failing the test on error.
func newDeliverer(t testing.TB, cfg Config) *Deliverer {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// metric returns the value of a counter or gauge, or the sample count of a
// histogram, gathered from reg.
func metric(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// arrival is a request the receiver verified.
type arrival struct{ id, cart string }

// receiver is the storefront's endpoint: it verifies every request with
// Verify, records it and answers as answer says for the n-th arrival (from
// 0) of the id; a hang answer waits until the client gives up.
type receiver struct {
	secrets []string
	answer  func(id string, n int) (status int, hang bool)

	mu       sync.Mutex
	arrivals []arrival
	counts   map[string]int
	problems []string
	srv      *httptest.Server
}

func newReceiver(t testing.TB, answer func(id string, n int) (int, bool)) *receiver {
	r := &receiver{secrets: []string{testSecret}, answer: answer, counts: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var p Payload
	problem := ""
	switch err := Verify(r.secrets, req.Header, body, time.Now(), 0); {
	case err != nil:
		problem = err.Error()
	case req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json":
		problem = fmt.Sprintf("%s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
	case json.Unmarshal(body, &p) != nil || p.ID != req.Header.Get(HeaderID) || p.CartID == "":
		problem = fmt.Sprintf("body %s with webhook-id %s", body, req.Header.Get(HeaderID))
	}
	r.mu.Lock()
	if problem != "" {
		r.problems = append(r.problems, problem)
		r.mu.Unlock()
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	n := r.counts[p.ID]
	r.counts[p.ID]++
	r.arrivals = append(r.arrivals, arrival{p.ID, p.CartID})
	r.mu.Unlock()
	status, hang := http.StatusOK, false
	if r.answer != nil {
		status, hang = r.answer(p.ID, n)
	}
	if hang {
		select {
		case <-req.Context().Done():
		case <-time.After(waitTime):
		}
		return
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "answer %d for %s", status, p.ID)
}

// count returns how many times id arrived.
func (r *receiver) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[id]
}

// check fails the test if a request failed verification, if an event of
// evs never arrived or arrived more than most times, or if a cart's events
// arrived out of order: once an event arrived, no earlier event of its cart
// may arrive again.
func (r *receiver) check(t *testing.T, evs []syncserver.Event, most int) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.problems {
		t.Errorf("receiver: %s", p)
	}
	index := map[string]int{}
	cartIndex := map[string]int{}
	for _, ev := range evs {
		index[ev.ID] = cartIndex[ev.CartID]
		cartIndex[ev.CartID]++
		if n := r.counts[ev.ID]; n < 1 || n > most {
			t.Errorf("event %s arrived %d times, want 1 to %d", ev.ID, n, most)
		}
	}
	last := map[string]int{}
	for i, a := range r.arrivals {
		if prev, ok := last[a.cart]; ok && index[a.id] < prev {
			t.Errorf("arrival %d: %s of cart %s after a later event of the cart", i, a.id, a.cart)
		}
		last[a.cart] = index[a.id]
	}
}

// cartEvents returns per events for each of n carts, the carts' events
// interleaved; event i of cart c is "evt_<c>_<i>".
func cartEvents(n, per int) []syncserver.Event {
	var evs []syncserver.Event
	now := time.Now()
	for i := range per {
		for c := range n {
			cartID := fmt.Sprintf("cart_%d", c)
			evs = append(evs, syncserver.Event{
				ID: fmt.Sprintf("evt_%d_%d", c, i), Type: syncserver.EventCartUpdated, CartID: cartID, At: now,
				Data: json.RawMessage(fmt.Sprintf(`{"cart_id":%q,"n":%d}`, cartID, i)),
			})
		}
	}
	return evs
}

// allInState reports whether every event of evs is in state.
func allInState(s *fakeStore, evs []syncserver.Event, state string) bool {
	for _, ev := range evs {
		if s.get(ev.ID).State != state {
			return false
		}
	}
	return true
}

func TestDeliverSigned(t *testing.T) {
	r := newReceiver(t, nil)
	store := &fakeStore{}
	evs := cartEvents(5, 4)
	store.add(evs...)
	cfg, reg, _ := testConfig(store, r.srv.URL)
	d := newDeliverer(t, cfg)
	start(t, d)
	waitFor(t, "every event delivered", func() bool { return allInState(store, evs, syncserver.EventDelivered) })
	r.check(t, evs, 1)
	if n := len(store.failed()); n != 0 {
		t.Errorf("%d failed attempts, want none", n)
	}
	if got := metric(t, reg, "cartsync_webhook_delivered_total"); got != float64(len(evs)) {
		t.Errorf("delivered_total %v, want %d", got, len(evs))
	}
	if got := metric(t, reg, "cartsync_webhook_delivery_seconds"); got != float64(len(evs)) {
		t.Errorf("delivery_seconds has %v samples, want %d", got, len(evs))
	}
	if got := metric(t, reg, "cartsync_webhook_retried_total"); got != 0 {
		t.Errorf("retried_total %v, want 0", got)
	}
	waitFor(t, "the pending gauge at 0", func() bool { return metric(t, reg, "cartsync_webhook_pending") == 0 })
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "cartsync_webhook_") {
			t.Errorf("metric %s lacks the cartsync_webhook_ prefix", mf.GetName())
		}
	}
}

func TestRetryAfterServerErrors(t *testing.T) {
	const fails = 2
	r := newReceiver(t, func(id string, n int) (int, bool) {
		if n < fails {
			return http.StatusInternalServerError, false
		}
		return http.StatusNoContent, false
	})
	store := &fakeStore{}
	evs := cartEvents(3, 3)
	store.add(evs...)
	cfg, reg, logs := testConfig(store, r.srv.URL)
	d := newDeliverer(t, cfg)
	start(t, d)
	waitFor(t, "every event delivered", func() bool { return allInState(store, evs, syncserver.EventDelivered) })
	r.check(t, evs, fails+1)
	for _, ev := range evs {
		if n := r.count(ev.ID); n != fails+1 {
			t.Errorf("%s arrived %d times, want %d", ev.ID, n, fails+1)
		}
	}

	// Each failure is recorded, with a backoff under the bound for its
	// attempt, the status and the answer's body, and never a secret.
	seen := map[int64]int{}
	for _, f := range store.failed() {
		if f.attempts != seen[f.seq] {
			t.Errorf("event %d: failure after %d attempts, want %d", f.seq, f.attempts, seen[f.seq])
		}
		seen[f.seq]++
		bound := min(cfg.BackoffBase<<f.attempts, cfg.BackoffCap)
		if wait := f.next.Sub(f.at); wait > bound {
			t.Errorf("event %d, attempt %d: retry in %s, more than %s", f.seq, f.attempts+1, wait, bound)
		}
		if f.dead {
			t.Errorf("event %d dead", f.seq)
		}
		if !strings.HasPrefix(f.lastErr, "HTTP 500: answer 500 for evt_") {
			t.Errorf("lastErr %q, want the status and the body's start", f.lastErr)
		}
		if strings.Contains(f.lastErr, strings.TrimPrefix(testSecret, "whsec_")) {
			t.Errorf("lastErr %q holds the secret", f.lastErr)
		}
	}
	if len(seen) != len(evs) {
		t.Errorf("failures of %d events, want %d", len(seen), len(evs))
	}
	for name, want := range map[string]int{
		"cartsync_webhook_delivered_total":       len(evs),
		"cartsync_webhook_attempts_failed_total": fails * len(evs),
		"cartsync_webhook_retried_total":         len(evs),
		"cartsync_webhook_dead_total":            0,
	} {
		if got := metric(t, reg, name); got != float64(want) {
			t.Errorf("%s = %v, want %d", name, got, want)
		}
	}

	// Failures are logged with the event, its type, the attempt and the
	// status, never with the body or the secret.
	l := logs.String()
	for _, want := range []string{"level=WARN", "event=" + evs[0].ID, "type=cart.updated", "attempt=1", "attempt=2", "status=500"} {
		if !strings.Contains(l, want) {
			t.Errorf("logs lack %q:\n%s", want, l)
		}
	}
	for _, secret := range []string{"answer 500", testSecret, strings.TrimPrefix(testSecret, "whsec_")} {
		if strings.Contains(l, secret) {
			t.Errorf("logs hold %q", secret)
		}
	}
}

func TestRetryAfterTimeout(t *testing.T) {
	r := newReceiver(t, func(id string, n int) (int, bool) {
		return http.StatusOK, n == 0 // the first attempt of every event hangs
	})
	store := &fakeStore{}
	evs := cartEvents(3, 3)
	store.add(evs...)
	cfg, _, _ := testConfig(store, r.srv.URL)
	cfg.Client = &http.Client{Timeout: 200 * time.Millisecond}
	d := newDeliverer(t, cfg)
	start(t, d)
	waitFor(t, "every event delivered", func() bool { return allInState(store, evs, syncserver.EventDelivered) })
	r.check(t, evs, 3)
	for _, ev := range evs {
		if n := r.count(ev.ID); n < 2 {
			t.Errorf("%s arrived %d times, want the hung attempt and more", ev.ID, n)
		}
	}
	for _, f := range store.failed() {
		if f.lastErr != "timeout" {
			t.Errorf("lastErr %q, want timeout", f.lastErr)
		}
	}
	if n := len(store.failed()); n < len(evs) {
		t.Errorf("%d failed attempts, want at least %d", n, len(evs))
	}
}

func TestRetryWindowDead(t *testing.T) {
	r := newReceiver(t, func(id string, n int) (int, bool) {
		if id == "evt_doomed" {
			return http.StatusServiceUnavailable, false
		}
		return http.StatusOK, false
	})
	store := &fakeStore{}
	now := time.Now()
	store.add(
		syncserver.Event{ID: "evt_doomed", Type: syncserver.EventCartCreated, CartID: "cart_a", At: now},
		syncserver.Event{ID: "evt_broken", Type: syncserver.EventCartCreated, CartID: "cart_b", At: now, Data: json.RawMessage(`{"x":`)},
		syncserver.Event{ID: "evt_next", Type: syncserver.EventCartUpdated, CartID: "cart_a", At: now},
	)
	cfg, reg, _ := testConfig(store, r.srv.URL)
	cfg.RetryWindow = 50 * time.Millisecond
	d := newDeliverer(t, cfg)
	start(t, d)
	waitFor(t, "the doomed event dead and the next delivered", func() bool {
		return store.get("evt_doomed").State == syncserver.EventDead && store.get("evt_next").State == syncserver.EventDelivered
	})
	dead, err := store.DeadEvents(context.Background(), 0, 10)
	if err != nil || len(dead) != 2 || dead[0].ID != "evt_doomed" || dead[1].ID != "evt_broken" {
		t.Fatalf("DeadEvents = %+v, %v; want evt_doomed and evt_broken", dead, err)
	}
	if !strings.HasPrefix(dead[0].LastError, "HTTP 503") {
		t.Errorf("doomed event's LastError %q, want HTTP 503", dead[0].LastError)
	}
	if !strings.HasPrefix(dead[1].LastError, "cannot encode") || r.count("evt_broken") != 0 {
		t.Errorf("broken event: LastError %q, sent %d times; want dead at once, never sent", dead[1].LastError, r.count("evt_broken"))
	}
	// Only the last failure of the doomed event made it dead, after the
	// retry window.
	var doomed []failure
	for _, f := range store.failed() {
		if f.seq == dead[0].Seq {
			doomed = append(doomed, f)
		}
	}
	for i, f := range doomed {
		if last := i == len(doomed)-1; f.dead != last {
			t.Errorf("failure %d of %d: dead %v", i+1, len(doomed), f.dead)
		}
	}
	if last := doomed[len(doomed)-1]; last.at.Sub(now) <= cfg.RetryWindow {
		t.Errorf("dead %s after the event, within the retry window", last.at.Sub(now))
	}
	// The cart's next event was sent only after the doomed one died.
	r.mu.Lock()
	if last := r.arrivals[len(r.arrivals)-1]; last.id != "evt_next" || r.counts["evt_doomed"] != len(doomed) {
		t.Errorf("arrivals %v, want every evt_doomed (%d) before evt_next", r.arrivals, len(doomed))
	}
	r.mu.Unlock()
	if got := metric(t, reg, "cartsync_webhook_dead_total"); got != 2 {
		t.Errorf("dead_total %v, want 2", got)
	}
	waitFor(t, "the dead gauge at 2", func() bool { return metric(t, reg, "cartsync_webhook_dead") == 2 })
}

func TestTwoDeliverers(t *testing.T) {
	r := newReceiver(t, nil)
	store := &fakeStore{}
	evs := cartEvents(20, 5)
	store.add(evs...)
	var regs []*prometheus.Registry
	for range 2 {
		cfg, reg, _ := testConfig(store, r.srv.URL)
		cfg.Batch = 7
		cfg.Concurrency = 3
		regs = append(regs, reg)
		start(t, newDeliverer(t, cfg))
	}
	waitFor(t, "every event delivered", func() bool { return allInState(store, evs, syncserver.EventDelivered) })
	r.check(t, evs, 2)
	total := 0.0
	for _, reg := range regs {
		total += metric(t, reg, "cartsync_webhook_delivered_total")
	}
	if total < float64(len(evs)) || total > float64(2*len(evs)) {
		t.Errorf("the deliverers delivered %v events, want %d to %d", total, len(evs), 2*len(evs))
	}
}

func TestKick(t *testing.T) {
	r := newReceiver(t, nil)
	store := &fakeStore{}
	cfg, _, _ := testConfig(store, r.srv.URL)
	cfg.PollInterval = time.Hour
	d := newDeliverer(t, cfg)
	start(t, d)
	waitFor(t, "the first claim", func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.claims > 0
	})
	evs := cartEvents(1, 1)
	store.add(evs...)
	d.Kick()
	waitFor(t, "the kicked event delivered", func() bool { return allInState(store, evs, syncserver.EventDelivered) })
	r.check(t, evs, 1)
	var nilDeliverer *Deliverer
	nilDeliverer.Kick() // does nothing
}

// A slow answer for one cart's event holds up that cart only: another
// cart's event, due while the slow request is in flight, is sent at once
// (the deliverer waited for its whole batch before claiming again).
func TestSlowAnswerHoldsUpOnlyItsCart(t *testing.T) {
	release := make(chan struct{})
	r := newReceiver(t, func(id string, n int) (int, bool) {
		if id == "evt_0_0" {
			<-release
		}
		return http.StatusOK, false
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	store := &fakeStore{}
	cfg, _, _ := testConfig(store, r.srv.URL)
	cfg.PollInterval = time.Hour
	d := newDeliverer(t, cfg)
	slow := cartEvents(1, 1)
	store.add(slow...)
	start(t, d)
	waitFor(t, "the slow request", func() bool { return r.count("evt_0_0") == 1 })
	other := []syncserver.Event{{ID: "evt_other", Type: syncserver.EventCartUpdated, CartID: "cart_other", At: time.Now(),
		Data: json.RawMessage(`{"cart_id":"cart_other"}`)}}
	store.add(other...)
	d.Kick()
	waitFor(t, "the other cart's event delivered while the slow one is in flight", func() bool {
		return allInState(store, other, syncserver.EventDelivered)
	})
	// Still in its first request: not given up on (the client's timeout
	// is 2 s) while the other cart's event waited behind it.
	if ev := store.get("evt_0_0"); ev.State == syncserver.EventDelivered || ev.Attempts != 0 {
		t.Fatalf("the slow event is %s after %d failed attempts (%s); want its first request in flight", ev.State, ev.Attempts, ev.LastError)
	}
	close(release)
	waitFor(t, "the slow event delivered", func() bool { return allInState(store, slow, syncserver.EventDelivered) })
}

// A backlog of many carts' events is claimed in batches, not one claim per
// event (each claim is a write transaction of the store).
func TestBacklogClaimedInBatches(t *testing.T) {
	r := newReceiver(t, nil)
	store := &fakeStore{}
	evs := cartEvents(60, 1)
	store.add(evs...)
	cfg, _, _ := testConfig(store, r.srv.URL)
	cfg.PollInterval = time.Hour
	start(t, newDeliverer(t, cfg))
	waitFor(t, "every event delivered", func() bool { return allInState(store, evs, syncserver.EventDelivered) })
	r.check(t, evs, 1)
	store.mu.Lock()
	claims := store.claims
	store.mu.Unlock()
	if claims > len(evs)/3 {
		t.Errorf("%d claims for %d events of as many carts, want them claimed in batches", claims, len(evs))
	}
}

// Claimed events are sent within their lease, however slowly the
// endpoint answers: no more are claimed than can be in flight (a batch
// claimed at once waited behind the slow answers past its lease, and was
// skipped until the lease ended).
func TestClaimedEventsAreSentWithinTheLease(t *testing.T) {
	r := newReceiver(t, func(string, int) (int, bool) {
		time.Sleep(300 * time.Millisecond)
		return http.StatusOK, false
	})
	store := &fakeStore{}
	evs := cartEvents(12, 1)
	store.add(evs...)
	cfg, _, logs := testConfig(store, r.srv.URL)
	cfg.Concurrency, cfg.Lease, cfg.Client = 2, 1500*time.Millisecond, &http.Client{Timeout: 500 * time.Millisecond}
	start(t, newDeliverer(t, cfg))
	waitFor(t, "every event delivered", func() bool { return allInState(store, evs, syncserver.EventDelivered) })
	if strings.Contains(logs.String(), "lease too short to send") {
		t.Errorf("events were claimed and then skipped for want of lease:\n%s", logs)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	followed := make(chan struct{}, 10)
	mux := http.NewServeMux()
	mux.HandleFunc("/hook", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { followed <- struct{}{} })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	store := &fakeStore{}
	store.add(cartEvents(1, 1)...)
	cfg, _, _ := testConfig(store, srv.URL+"/hook")
	cfg.Client = nil // the default client
	cfg.Lease = 0
	d := newDeliverer(t, cfg)
	start(t, d)
	waitFor(t, "a failed attempt", func() bool { return len(store.failed()) > 0 })
	if f := store.failed()[0]; !strings.HasPrefix(f.lastErr, "HTTP 307") {
		t.Errorf("lastErr %q, want HTTP 307", f.lastErr)
	}
	if len(followed) != 0 {
		t.Error("the redirect was followed")
	}
}

func TestBackoff(t *testing.T) {
	cfg, _, _ := testConfig(&fakeStore{}, "http://localhost/hook")
	cfg.BackoffBase, cfg.BackoffCap = 10*time.Millisecond, 100*time.Millisecond
	d := newDeliverer(t, cfg)
	// With the jitter at its top, the bound: doubling, then capped.
	d.jitter = func(n time.Duration) time.Duration { return n }
	for failed, want := range []time.Duration{10, 20, 40, 80, 100, 100} {
		if got := d.backoff(failed); got != want*time.Millisecond {
			t.Errorf("backoff(%d) = %s, want %s", failed, got, want*time.Millisecond)
		}
	}
	if got := d.backoff(1000); got != cfg.BackoffCap {
		t.Errorf("backoff(1000) = %s, want the cap", got)
	}
	// With the real jitter, between 0 and the bound.
	cfg.Registerer = nil
	d2 := newDeliverer(t, cfg)
	for failed := range 8 {
		bound := min(cfg.BackoffBase<<failed, cfg.BackoffCap)
		for range 50 {
			if got := d2.backoff(failed); got < 0 || got > bound {
				t.Fatalf("backoff(%d) = %s, outside [0, %s]", failed, got, bound)
			}
		}
	}
	if got := retryAfter("120", time.Now()); got != 2*time.Minute {
		t.Errorf("Retry-After 120: %s", got)
	}
}

func TestNewErrors(t *testing.T) {
	store := &fakeStore{}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"no store", func(c *Config) { c.Store = nil }},
		{"no URL", func(c *Config) { c.URL = "" }},
		{"relative URL", func(c *Config) { c.URL = "/hook" }},
		{"ftp URL", func(c *Config) { c.URL = "ftp://example.com/hook" }},
		{"no secret", func(c *Config) { c.Secrets = nil }},
		{"short secret", func(c *Config) { c.Secrets = []string{"short"} }},
		{"lease within the timeout", func(c *Config) { c.Lease = 2 * time.Second }},
		{"cap under base", func(c *Config) { c.BackoffCap = time.Millisecond }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, _ := testConfig(store, "https://user:pass@shop.example/hook")
			tc.mod(&cfg)
			d, err := New(cfg)
			if err == nil || d != nil {
				t.Fatalf("New = %v, %v; want an error", d, err)
			}
			if strings.Contains(err.Error(), "pass") {
				t.Errorf("error %q quotes the URL's credentials", err)
			}
		})
	}
	cfg, _, _ := testConfig(store, "https://shop.example/hook")
	newDeliverer(t, cfg)
	if _, err := New(cfg); err == nil {
		t.Error("a second deliverer on the same registerer: no error")
	}
}

func TestRunTwice(t *testing.T) {
	cfg, _, _ := testConfig(&fakeStore{}, "http://localhost/hook")
	d := newDeliverer(t, cfg)
	start(t, d)
	waitFor(t, "Run to start", func() bool { return d.running.Load() })
	if err := d.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}
