package syncclient

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// Log keys.
const (
	logClient  = "client"
	logErr     = "err"
	logCode    = "code"
	logMessage = "message"
	logType    = "type"
	logOps     = "ops"
	logVersion = "version"
	logWait    = "wait"
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
	// Logger; nil means slog.Default().
	Logger *slog.Logger
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
type Engine struct {
	cfg   Config
	store Storage
	log   *slog.Logger

	wake    chan struct{} // new ops to send
	running atomic.Bool

	loadMu sync.Mutex // serializes reloads from storage, and an edit's store-and-show

	mu         sync.Mutex
	client     string // the client id of new ops
	clientCart string // the cart id client's seqs count for; "" for none yet
	loaded     bool
	readAt     time.Time // when the storage was last read (reload)
	token      string
	confirmed  *cart.Cart // never nil
	pending    []cart.Op  // replaced, never modified in place
	shown      *cart.Cart
	limits     cart.Limits
	status     Status
	lastErr    *protocol.Error
	rejected   []protocol.Result
	waiting    int
	notices    []cart.Notice    // of the shown cart (State.Notices)
	totals     map[string]int64 // of the shown cart (State.Totals)
	changed    chan struct{}    // closed and replaced on every change

	// Login, from SetUser (not persisted).
	userSet     bool // SetUser was called: it overrides Config.UserToken
	userToken   string
	policy      cart.Policy
	userGen     uint64        // counts SetUser changes
	userChanged chan struct{} // signalled by SetUser
	needsLogin  bool

	// What the latest welcome said: its cart, user and guest cart. They
	// describe the confirmed cart when sessCart is its id.
	sessCart, sessUser, sessGuest string
	sessGen                       uint64          // the userGen of the hello that welcome answered
	userCarts                     map[string]bool // carts seen as user carts
	guestTok, guestCart           string          // guestCart is device token guestTok's guest cart
	gone                          map[string]bool // carts that no longer exist for this device

	cartExpired bool
	merge       *protocol.MergeInfo
	choice      *protocol.MergeInfo
	dropped     []cart.Op
	live        *live // the open connection, for Choose

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
	if cfg.Limits.MaxQuantity == 0 {
		cfg.Limits = cart.DefaultLimits
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
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
	e := &Engine{
		cfg:         cfg,
		store:       cfg.Storage,
		client:      cfg.ClientID,
		log:         cfg.Logger,
		wake:        make(chan struct{}, 1),
		confirmed:   &cart.Cart{Lines: []*cart.Line{}},
		limits:      cfg.Limits,
		changed:     make(chan struct{}),
		userChanged: make(chan struct{}, 1),
		userCarts:   map[string]bool{},
		gone:        map[string]bool{},
	}
	e.shown = e.confirmed
	return e, nil
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
	return e.client
}

// rotateLocked moves new ops to a fresh client id.
func (e *Engine) rotateLocked(why string) {
	old := e.client
	e.client, e.clientCart = newClientID(), ""
	e.log.Info("new client id", logClient, e.client, "old", old, "why", why)
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
	if token == "" {
		policy = ""
	}
	e.mu.Lock()
	if e.userSet && token == e.userToken && policy == e.policy && !e.needsLogin {
		e.mu.Unlock()
		return nil
	}
	e.userSet, e.userToken, e.policy = true, token, policy
	e.userGen++
	e.needsLogin = false
	e.choice = nil // a choice belongs to the login it was asked for
	e.changedLocked()
	e.mu.Unlock()
	e.notify()
	select {
	case e.userChanged <- struct{}{}:
	default:
	}
	return nil
}

// AckNotices clears the notices the UI has shown: State.CartExpired,
// State.Merge and State.Dropped.
func (e *Engine) AckNotices() {
	e.update(func() {
		e.cartExpired = false
		e.merge = nil
		e.dropped = nil
	})
}

// live is the open connection's door for Choose.
type live struct {
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
	l, choice := e.live, e.choice
	e.mu.Unlock()
	if l == nil {
		return ErrNotConnected
	}
	if choice == nil {
		return ErrNoChoice
	}
	req := chooseReq{policy: policy, err: make(chan error, 1)}
	select {
	case l.choose <- req:
	case <-l.done:
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
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return nil
}

// reload reads the storage, the source of truth for the confirmed cart and
// the outbox, and rebuilds the shown cart.
func (e *Engine) reload(ctx context.Context) error {
	e.loadMu.Lock()
	st, err := e.store.Load(ctx)
	if err != nil {
		e.loadMu.Unlock()
		return fmt.Errorf("load storage: %w", err)
	}
	if st.Cart == nil {
		st.Cart = &cart.Cart{Lines: []*cart.Line{}}
	}
	e.mu.Lock()
	e.loaded = true
	e.token = st.DeviceToken
	e.confirmed = st.Cart
	e.ownCartLocked()
	e.pending = st.Pending
	e.readAt = time.Now()
	e.rebuildLocked()
	e.changedLocked()
	e.mu.Unlock()
	e.loadMu.Unlock()
	e.notify() // after unlocking: OnChange may edit
	return nil
}

// ownCartLocked makes the confirmed cart the one the client id's seqs
// count for. Seqs count per client id and cart: on another cart the id's
// next seq would be refused as out of order, so an id that counted for
// another cart is rotated.
func (e *Engine) ownCartLocked() {
	if e.confirmed.ID != e.clientCart {
		if e.clientCart != "" {
			e.rotateLocked("the cart changed")
		}
		e.clientCart = e.confirmed.ID
	}
}

// rebuildLocked replays the pending ops of the confirmed cart on it and
// counts the others, then the notices and totals shown. Rejections are
// expected (the line may be gone) and ignored: the server decides.
func (e *Engine) rebuildLocked() {
	c := e.confirmed.Clone()
	e.waiting = 0
	for _, op := range e.pending {
		if !e.belongsLocked(op) {
			e.waiting++
			continue
		}
		c.Apply(op, localDevice, e.limits)
	}
	e.shown = c
	e.annotateLocked(len(e.pending) > e.waiting)
}

// belongsLocked reports whether op is for the confirmed cart: made on it,
// before the first sync, or (on a user cart) on the guest cart the latest
// welcome named for it, whose ops the server applies to the user cart.
func (e *Engine) belongsLocked(op cart.Op) bool {
	id := e.confirmed.ID
	return op.Cart == "" || op.Cart == id ||
		(id != "" && id == e.sessCart && e.sessUser != "" && e.sessGuest != "" && op.Cart == e.sessGuest)
}

// guestOfLocked returns the guest cart of device token tok if the engine
// knows it. With fallback, a cart it does not know to be a user cart
// counts as tok's guest cart.
func (e *Engine) guestOfLocked(tok, fallback string) string {
	if tok != "" && tok == e.guestTok && e.guestCart != "" {
		return e.guestCart
	}
	if fallback != "" && !e.userCarts[fallback] {
		return fallback
	}
	return ""
}

// dropGone removes the pending ops of carts that no longer exist for this
// device and reports them in State.Dropped.
func (e *Engine) dropGone(ctx context.Context) error {
	e.mu.Lock()
	var ops []cart.Op
	for _, op := range e.pending {
		if op.Cart != "" && e.gone[op.Cart] {
			ops = append(ops, op)
		}
	}
	e.mu.Unlock()
	if len(ops) == 0 {
		return nil
	}
	ids := make([]protocol.OpID, len(ops))
	for i, op := range ops {
		ids[i] = opID(op)
	}
	if err := e.store.Confirm(ctx, nil, ids); err != nil {
		return fmt.Errorf("drop ops of a gone cart: %w", err)
	}
	e.log.Warn("ops dropped: their cart no longer exists", logOps, len(ops), "cart", ops[0].Cart)
	e.update(func() {
		e.dropped = append(e.dropped, ops...)
		if n := len(e.dropped) - maxDropped; n > 0 {
			e.dropped = slices.Clone(e.dropped[n:])
		}
	})
	return e.reload(ctx)
}

func (e *Engine) changedLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// update changes the in-memory state under the lock, then notifies.
func (e *Engine) update(f func()) {
	e.mu.Lock()
	f()
	e.changedLocked()
	e.mu.Unlock()
	e.notify()
}

func (e *Engine) setStatus(s Status) {
	e.mu.Lock()
	same := e.status == s
	e.mu.Unlock()
	if !same {
		e.update(func() { e.status = s })
	}
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
