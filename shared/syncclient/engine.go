package syncclient

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// localDevice is the device id the engine uses when it replays its pending
// ops on the confirmed cart; the server stamps the real one.
const localDevice = "local"

// maxRejected is how many recent rejections State keeps.
const maxRejected = 20

// maxDropped is how many dropped ops State keeps until AckNotices.
const maxDropped = 100

// Errors of the engine's methods.
var (
	// ErrRunning is returned by Run when the engine is already running.
	ErrRunning = errors.New("syncclient: engine already running")
	// ErrNotConnected is returned by Choose when no connection is open.
	ErrNotConnected = errors.New("syncclient: not connected")
	// ErrNoChoice is returned by Choose when the server asked for no
	// choice on the current connection.
	ErrNoChoice = errors.New("syncclient: no login merge is waiting for a choice")
)

// Config configures an Engine.
type Config struct {
	// Storage holds the device token, the confirmed cart and the outbox.
	// Required.
	Storage Storage
	// Dial opens a connection to the server; required by Run. See
	// WebsocketDialer.
	Dial DialFunc
	// BaseURL is the server's HTTP origin, such as
	// "https://cart.example.com": required by Checkout.
	BaseURL string
	// HTTPClient makes Checkout's request; nil means http.DefaultClient,
	// or in a browser the Fetch API without net/http's Transport.
	HTTPClient Doer
	// ClientID identifies this engine's ops; one per tab or process, never
	// reused with the same Storage. Empty means 128 random bits in hex.
	// The engine moves to a new random id when the cart changes or the
	// server can no longer take this one's ops (see Engine.ClientID).
	ClientID string
	// Limits validate edits before they are queued until the server sends
	// its own. Zero means cart.DefaultLimits.
	Limits cart.Limits
	// Logger; nil means slog.Default(), and in the browser (js/wasm) no
	// logging.
	Logger Logger
	// OnChange is called after every change of State, with the newest
	// state, one call at a time, on the goroutine that made the change (an
	// edit's, or Run's): it should return quickly. It may call the Engine.
	OnChange func(State)
	// Heartbeat is the ping interval until the server's welcome sets it;
	// zero means protocol.HeartbeatMillis.
	Heartbeat time.Duration
	// BackoffBase, BackoffHold and BackoffCap shape the reconnection delay
	// (full jitter): its ceiling doubles from BackoffBase up to
	// BackoffHold, stays there for a dozen attempts, then doubles up to
	// BackoffCap (docs/protocol.md, Reconnecting). Zero means 500ms, 5s
	// and 30s. BackoffBase and BackoffCap also bound the retries of
	// refused pushes and syncs.
	BackoffBase, BackoffHold, BackoffCap time.Duration
	// StableAfter is how long a connection must stay up after the reply
	// to its hello for the reconnection delay to start over (a fully
	// acknowledged push also starts it over); zero means 2s.
	StableAfter time.Duration
	// Resync is how long a connection may go without news of the cart (a
	// pushed cart, an ack, a sync reply) before the engine syncs anyway: a
	// lost push is otherwise noticed only at the next one. Zero means 5
	// minutes; negative, never.
	Resync time.Duration
	// PushDelay is how long a push waits after an edit on this engine, so
	// that edits made close together go in one push and the send does not
	// compete with what the edit's caller does next (in the widget: the
	// reply to the host page). The wait starts at the first edit not yet
	// pushed and does not move back with later ones; while it lasts,
	// everything in the outbox waits with it, other tabs' ops too. Zero
	// (the default) sends at once.
	PushDelay time.Duration
	// Rand returns a number in [0, 1) for backoff jitter; nil means
	// math/rand/v2.
	Rand func() float64
	// UserToken, if set, returns the user token to present in each hello
	// ("" for none): the storefront's signed statement of who is logged in.
	// It is used until the first call of Engine.SetUser, which replaces
	// it; SetUser is the way to log in and out while running. Once the
	// server refuses the token (State.NeedsLogin), the engine waits for
	// SetUser.
	UserToken func() string
}

// Engine is the client sync engine. Its methods are safe for concurrent use.
//
// It is the driver of a state machine (machine.go) that holds the state
// and the protocol logic: the Engine owns the storage, the connection, the
// clock and the timers, feeds the machine what happens, and carries out
// what it asks for.
type Engine struct {
	cfg   Config
	store Storage
	log   Logger

	running     atomic.Bool
	ran         atomic.Bool   // Run was called before
	wake        chan struct{} // ops queued, or the storage changed: see what is due
	userChanged chan struct{} // SetUser changed the user

	// ioMu orders the storage's I/O with what the machine makes of it: a
	// read and its taking, an edit's write and its showing, and an input
	// of the connection with the writes and reads it asks for, each
	// whole before the next.
	ioMu sync.Mutex

	mu      sync.Mutex // guards the fields below
	m       *machine
	dirty   bool          // the machine's state changed since it was published
	view    State         // the state published: what Snapshot returns
	login   loginView     // published with it, for UserWait
	changed chan struct{} // closed and replaced at every publish
	door    *door         // the open connection's, for Choose

	nmu    sync.Mutex // OnChange delivery
	nBusy  bool
	nDirty bool
}

// New returns an engine. It does no I/O: the storage is read on the first
// edit, Flush or Run.
func New(cfg Config) (*Engine, error) {
	if cfg.Storage == nil {
		return nil, errors.New("syncclient: Config.Storage is required")
	}
	if cfg.ClientID == "" {
		cfg.ClientID = newClientID()
	}
	if !cart.ValidClientID(cfg.ClientID) {
		return nil, fmt.Errorf("syncclient: client id %q: must be 1 to %d printable bytes", cfg.ClientID, cart.MaxClientID)
	}
	cfg = cfg.withDefaults()
	e := &Engine{
		cfg:         cfg,
		store:       cfg.Storage,
		log:         cfg.Logger,
		wake:        make(chan struct{}, 1),
		userChanged: make(chan struct{}, 1),
		m:           newMachine(cfg, newClientID),
		changed:     make(chan struct{}),
	}
	e.view, e.login = e.m.snapshot(), e.m.loginView()
	return e, nil
}

// withDefaults returns cfg with its zero fields set to their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Limits.MaxQuantity == 0 {
		cfg.Limits = cart.DefaultLimits
	}
	if cfg.Logger == nil || nilPointer(cfg.Logger) {
		cfg.Logger = defaultLogger()
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = protocol.HeartbeatMillis * time.Millisecond
	}
	if cfg.BackoffBase <= 0 {
		cfg.BackoffBase = 500 * time.Millisecond
	}
	if cfg.BackoffCap <= 0 {
		cfg.BackoffCap = 30 * time.Second
	}
	if cfg.BackoffHold <= 0 {
		cfg.BackoffHold = 5 * time.Second
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = 2 * time.Second
	}
	if cfg.Resync == 0 {
		cfg.Resync = 5 * time.Minute
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Float64
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = defaultDoer()
	}
	return cfg
}

// newClientID returns 128 random bits in hex.
func newClientID() string {
	var b [16]byte
	_, _ = crand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// ClientID returns the client id the engine's next op will carry. It
// changes when the cart changes (seqs count per client id and cart), and
// when ops of this id were lost so that the server can take no more of them.
func (e *Engine) ClientID() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m.client
}

// apply calls f on the machine under the lock and returns the effects it
// asked for. What f changed is published by the next publish: once the
// storage effects are carried out, so that nothing is shown, or reported
// to OnChange, before it is stored.
func (e *Engine) apply(f func(m *machine)) []effect {
	e.mu.Lock()
	defer e.mu.Unlock()
	f(e.m)
	effs, changed := e.m.take()
	e.dirty = e.dirty || changed
	return effs
}

// publish makes the machine's state the one shown, if it changed, and
// reports whether it did: the caller then notifies (not while holding
// ioMu: OnChange may edit).
func (e *Engine) publish() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.dirty {
		return false
	}
	e.dirty = false
	e.view, e.login = e.m.snapshot(), e.m.loginView()
	close(e.changed)
	e.changed = make(chan struct{})
	return true
}

// update is apply and publish for what asks for no storage effect,
// notifying. It takes ioMu: publishing in the middle of a connection's
// input would show what that input has not stored yet.
func (e *Engine) update(f func(m *machine)) {
	e.ioMu.Lock()
	e.apply(f)
	changed := e.publish()
	e.ioMu.Unlock()
	if changed {
		e.notify()
	}
}

func (e *Engine) setStatus(s Status) {
	e.update(func(m *machine) { m.setStatus(s) })
}

func (e *Engine) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// SetUser sets the user token (the storefront's signed statement of who is
// logged in) and the login merge policy ("" for the server's default) that
// the next hellos present, in place of Config.UserToken. They are not
// stored: the host page provides them on every load. If they change, or
// the engine needs a login (State.NeedsLogin), it clears NeedsLogin and
// reconnects at once, so that the server merges this device's guest cart
// into the user's and the user's cart is shown. SetUser("", "") logs out:
// the next hello is a guest one, and the server hands a fresh guest cart
// if the old one was merged at login. The only error is an unknown policy.
func (e *Engine) SetUser(token string, policy cart.Policy) error {
	if policy != "" && !policy.Valid() {
		return fmt.Errorf("syncclient: unknown merge policy %q", policy)
	}
	var changed bool
	e.update(func(m *machine) { changed = m.setUser(token, policy) })
	if changed {
		e.signal(e.userChanged)
	}
	return nil
}

// Limits returns the cart limits edits are checked against: the server's
// from the latest welcome, or Config.Limits before one.
func (e *Engine) Limits() cart.Limits {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.m.limits
}

// NoUser tells the engine that no user is logged in on this page and none
// will be until SetUser: the host page has not called login. A user's cart
// stored on the device from an earlier page is then hidden (State.Cart
// shows only the edits made since) until the server names this device's
// cart or SetUser logs a user in. Without it the stored cart is shown
// until the first welcome, as an app that presents its user through
// Config.UserToken wants.
func (e *Engine) NoUser() {
	e.update(func(m *machine) {
		if !m.noUser {
			wasHidden := m.hidden()
			m.noUser = true
			m.hide(wasHidden)
		}
	})
}

// NoteResults adds results that another engine on this device heard of
// (another tab that sent the ops from the shared outbox) to this engine's
// state, so that its UI says so too: refusals to State.Rejected, ops
// applied reduced to State.Reduced. Those already there are left as they
// are; other results are ignored.
func (e *Engine) NoteResults(rs ...protocol.Result) {
	has := func(list []protocol.Result, r protocol.Result) bool {
		return slices.ContainsFunc(list, func(o protocol.Result) bool { return o.Client == r.Client && o.Seq == r.Seq })
	}
	e.update(func(m *machine) {
		for _, r := range rs {
			switch {
			case r.Status == protocol.StatusRejected && r.Error != nil && !has(m.rejected, r):
				m.addRejected(r)
			case reduced(r) && !has(m.warned, r):
				m.addWarned(r)
			}
		}
	})
}

// AckNotices clears the notices the UI has shown: State.CartExpired,
// State.Merge and State.Dropped.
func (e *Engine) AckNotices() {
	e.update((*machine).ackNotices)
}

// door is the open connection's, for Choose.
type door struct {
	choose chan chooseReq
	done   chan struct{} // closed when the connection ends
}

type chooseReq struct {
	policy cart.Policy
	err    chan error // buffered
}

// Choose answers a login merge the server holds for the shopper's choice
// (State.Choice): policy is cart.PolicyMerge, PolicyReplace or PolicyKeep.
// It returns once the choice is sent; the server answers with the merge
// (State.Merge, status merged, and Choice nil) and the merged cart. It
// returns ErrNotConnected without a connection, and ErrNoChoice if there is
// nothing to choose on it or a choice was sent and not answered yet.
func (e *Engine) Choose(ctx context.Context, policy cart.Policy) error {
	switch policy {
	case cart.PolicyMerge, cart.PolicyReplace, cart.PolicyKeep:
	default:
		return fmt.Errorf("syncclient: choose takes the policy merge, replace or keep, not %q", policy)
	}
	e.mu.Lock()
	d, live, choice := e.door, e.m.live, e.m.choice
	e.mu.Unlock()
	if d == nil || live == 0 {
		return ErrNotConnected
	}
	if choice == nil {
		return ErrNoChoice
	}
	req := chooseReq{policy: policy, err: make(chan error, 1)}
	select {
	case d.choose <- req:
	case <-d.done:
		return ErrNotConnected
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.err:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reload re-reads the storage, which another engine sharing it (another tab)
// may have changed, shows the result, and wakes the sender so that ops the
// other engine queued are sent by this one too if it is connected. Call it
// when told that another tab changed the storage.
func (e *Engine) Reload(ctx context.Context) error {
	if err := e.reload(ctx); err != nil {
		return err
	}
	e.signal(e.wake)
	return nil
}

// Wake wakes the sender without reading the storage: one more look at
// what this engine holds to send, as a page is hidden or left. (A read of
// the storage then can be caught by the page's freeze, and hold the
// storage from every other engine sharing it until the browser gives up
// on it.)
func (e *Engine) Wake() { e.signal(e.wake) }

// reload reads the storage, the source of truth for the confirmed cart and
// the outbox, and shows it.
func (e *Engine) reload(ctx context.Context) error {
	e.ioMu.Lock()
	_, err := e.read(ctx, (*machine).loadedStored)
	changed := err == nil && e.publish()
	e.ioMu.Unlock()
	if changed {
		e.notify() // after unlocking: OnChange may edit
	}
	return err
}

// read reads the storage and gives it to the machine with take
// (loadedStored, or storageRead for a connection's read), returning the
// effects that asks for. The caller holds ioMu.
func (e *Engine) read(ctx context.Context, take func(*machine, time.Time, Stored)) ([]effect, error) {
	st, err := e.store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("load storage: %w", err)
	}
	return e.apply(func(m *machine) { take(m, time.Now(), st) }), nil
}

// notify calls OnChange with the newest state. Calls never overlap and never
// go back in time; a change made while OnChange runs (even by OnChange
// itself) is delivered by another call after it returns.
func (e *Engine) notify() {
	if e.cfg.OnChange == nil {
		return
	}
	e.nmu.Lock()
	e.nDirty = true
	if e.nBusy {
		e.nmu.Unlock()
		return
	}
	e.nBusy = true
	for e.nDirty {
		e.nDirty = false
		e.nmu.Unlock()
		e.cfg.OnChange(e.Snapshot())
		e.nmu.Lock()
	}
	e.nBusy = false
	e.nmu.Unlock()
}
