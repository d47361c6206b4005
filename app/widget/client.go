package widget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// This file is what runs for the page in the browser. It compiles natively
// too (app.Value calls are no-ops there) but is only reached from OnMount,
// which go-app calls in the browser only.

const (
	// panelWidth is the width, in CSS pixels, the open panel asks the host
	// for; the host gives at most its viewport's width. The panel fills the
	// frame up to that width (assets/widget.css), so it cannot be measured in
	// a frame still sized for the closed button.
	panelWidth = 420
	// checkoutWait bounds the wait for pending edits to reach the server
	// before checkout.
	checkoutWait = 10 * time.Second
	// chooseWait bounds the wait for a login choice to be sent.
	chooseWait = 10 * time.Second
	// maxRequestBytes bounds a request from the host, as JSON.
	maxRequestBytes = 1 << 20
	// tabsChannel is the BroadcastChannel the tabs tell each other about
	// edits on.
	tabsChannel = "cartsync"
	// focusable selects the elements Tab moves between in the panel.
	focusable = `button:not([disabled]), [href], input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])`
)

// errStopped stands for why syncing stopped when the engine does not say.
var errStopped = errors.New("widget: sync stopped")

// client is what lives for the page in the browser: the engine, the queue
// of edits and requests, the bridge and the listeners.
type client struct {
	w   *Widget
	ctx app.Context // the widget's, for Dispatch, Defer and Async
	log syncclient.Logger

	run    context.Context // ends when the widget is dismounted
	cancel context.CancelFunc

	parent app.Value // window.parent; nil when the widget posts nothing
	host   string    // the host's origin when parent is set

	jobs         *queue
	eng          atomic.Pointer[syncclient.Engine] // set by the first job
	ann          announcer
	open         atomic.Bool // the panel is open, for the key listener
	reloadQueued atomic.Bool
	logoutLater  atomic.Bool  // another tab logged out while this page was hidden
	connected    atomic.Bool  // the engine's last state was connected
	loggedIn     atomic.Bool  // the host called login, and logout not since
	loginAt      atomic.Int64 // when the host last called login (ms since the epoch)
	signedOut    bool         // the host page said nobody is signed in (set before start)

	// The language, on the queue's goroutine (language.go): the theme's
	// locale ("" for none), the browser's languages, the storefront's
	// messages by language subtag (never changed once set: the UI
	// goroutine reads them).
	locale   string
	browser  []string
	messages map[string]map[string]string

	tabsMu    sync.Mutex
	tabs      app.Value // the BroadcastChannel, or nil (none, or closed while the page is in the back/forward cache)
	tabsFn    app.Func  // its message listener
	socks     sockets   // the page's open WebSockets (sockets_js.go)
	listeners []listener

	pending atomic.Int64 // the engine's State.Pending last seen (tellAcked)

	toldMu sync.Mutex
	told   map[protocol.OpID]bool // the refusals in the engine's state, told to the other tabs or heard from them

	connMu sync.Mutex
	cut    context.CancelFunc // ends the engine's current run; nil before the first
}

type listener struct {
	target app.Value
	event  string
	fn     app.Func
}

// OnMount starts the widget in the browser.
func (w *Widget) OnMount(ctx app.Context) {
	c, ok := newClient(ctx, w)
	if !ok {
		w.blocked = true
		return
	}
	w.c, w.host = c, c.host
	c.start()
}

// OnDismount stops what OnMount started.
func (w *Widget) OnDismount() {
	if w.c != nil {
		w.c.stop()
		w.c = nil
	}
}

// newClient decides whom the widget talks to. Framed by an allowed host, it
// posts to window.parent; opened on its own (tests, direct visits) it works
// but posts nothing; framed by any other page it refuses to work (false).
func newClient(ctx app.Context, w *Widget) (*client, bool) {
	c := &client{w: w, ctx: ctx, log: consoleLogger{}, jobs: newQueue()}
	win := app.Window()
	parent := win.Get("parent")
	if !parent.Truthy() || parent.Equal(win) {
		return c, true
	}
	hash := win.Get("location").Get("hash").String()
	host, ok := allowedHost(hash, parseOrigins(app.Getenv(envAllowedOrigins)))
	if !ok {
		c.log.Warn("widget framed by a page that is not an allowed storefront; not starting")
		return nil, false
	}
	c.parent, c.host = parent, host
	c.signedOut = signedOutHint(hash)
	return c, true
}

func (c *client) start() {
	c.run, c.cancel = context.WithCancel(context.Background())
	c.browser = browserLanguages()
	setLanguage(c.language(), c.locale)
	win := app.Window()
	doc := win.Get("document")
	if c.parent != nil {
		c.listen(win, "message", c.onMessage)
	}
	c.listen(doc, "keydown", c.onKeyDown)
	c.listen(win, "focus", c.onFrameFocus)
	c.listenLifecycle(win, doc)
	// The browser knows before the heartbeat does: a socket open when the
	// network goes away is not closed by it, and would count as connected
	// ("syncing") until the server has been silent for 2.5 heartbeats. And
	// when the network comes back, the engine may be in a backoff wait of
	// up to 30 s. So both events start a new connection at once: offline,
	// it fails and the widget says offline; online, edits go out now.
	c.listen(win, "offline", func(app.Value, []app.Value) any {
		c.reconnect("the browser went offline")
		return nil
	})
	c.listen(win, "online", func(app.Value, []app.Value) any {
		c.reconnect("the browser is online again")
		return nil
	})
	c.openTabs()
	c.socks.track()
	c.jobs.push(c.init)
	c.ctx.Async(func() { c.jobs.run(c.run) })
}

func (c *client) stop() {
	c.cancel()
	for _, l := range c.listeners {
		l.target.Call("removeEventListener", l.event, l.fn)
		l.fn.Release()
	}
	c.listeners = nil
	c.closeTabs()
	c.socks.untrack()
}

func (c *client) listen(target app.Value, event string, f func(this app.Value, args []app.Value) any) {
	fn := app.FuncOf(f)
	target.Call("addEventListener", event, fn)
	c.listeners = append(c.listeners, listener{target, event, fn})
}

// init is the first job: open the storage, start the engine, show the
// stored cart and tell the host it is ready.
func (c *client) init(ctx context.Context) {
	store, note := openStorage(ctx, c.log)
	loc := app.Window().Get("location")
	eng, err := syncclient.New(syncclient.Config{
		Storage:   recordingStorage{Storage: store, ops: c.w.ops},
		Dial:      syncclient.WebsocketDialer(syncURL(loc.Get("protocol").String(), loc.Get("host").String())),
		BaseURL:   loc.Get("origin").String(),
		Logger:    c.log,
		OnChange:  c.onChange,
		PushDelay: pushDelay,
	})
	if err != nil { // only without a storage
		c.log.Error("start sync engine", logkey.Err, err)
		return
	}
	c.eng.Store(eng)
	if c.signedOut {
		// Nobody is signed in on the host page: the account's cart the
		// device keeps is hidden from the first state, not after the
		// login grace.
		eng.NoUser()
	}
	if err := eng.Reload(ctx); err != nil {
		c.log.Error("load the stored cart", logkey.Err, err)
	}
	st := eng.Snapshot()
	c.post(c.ann.readyEvent(st))
	c.dispatch(func(ctx app.Context) {
		c.w.show(st)
		c.w.storageNote = note
	})
	c.ctx.Async(func() { c.keepSyncing(eng) })
	c.ctx.Async(func() { c.noLoginAfter(eng, loginGrace) })
}

// loginGrace is how long after the widget is ready the host page has to
// call login before the widget takes it that no one is logged in.
const loginGrace = 2 * time.Second

// noLoginAfter tells the engine that no user is logged in on this page if
// the host has not logged one in by d after ready: a user's cart stored
// by an earlier page is then hidden (Engine.NoUser). Online the server's
// welcome of this device's cart does the same sooner; offline this is what
// keeps a shared device from showing the last account's cart to the next
// person.
func (c *client) noLoginAfter(eng *syncclient.Engine, d time.Duration) {
	select {
	case <-time.After(d):
	case <-c.run.Done():
		return
	}
	if !c.loggedIn.Load() { // after a logout the account's cart is hidden already
		eng.NoUser()
	}
}

// keepSyncing runs the engine until the widget is dismounted or the engine
// stops for good, starting it over (with a new connection and no backoff)
// whenever reconnect ends the current run.
func (c *client) keepSyncing(eng *syncclient.Engine) {
	for {
		ctx, cancel := context.WithCancel(c.run)
		c.connMu.Lock()
		c.cut = cancel
		c.connMu.Unlock()
		err := eng.Run(ctx)
		cancel()
		if c.run.Err() != nil {
			return
		}
		if ctx.Err() != nil {
			continue // reconnect asked for a new connection
		}
		c.log.Error("sync stopped", logkey.Err, err)
		if err == nil {
			err = errStopped
		}
		c.dispatch(func(ctx app.Context) { c.w.stopped = err })
		return
	}
}

// reconnect drops the engine's connection, or its wait before the next
// attempt, and dials again at once. Pending edits are safe: they stay in the
// outbox until the server acknowledges them, and the server ignores an op
// it has already applied.
func (c *client) reconnect(why string) {
	c.connMu.Lock()
	cut := c.cut
	c.connMu.Unlock()
	if cut != nil {
		c.log.Info("reconnecting", logkey.Reason, why)
		cut()
	}
}

// syncURL is the sync endpoint on the server that served the page.
func syncURL(protocol, host string) string {
	if protocol == "https:" {
		return "wss://" + host + "/v1/sync"
	}
	return "ws://" + host + "/v1/sync"
}

// onChange gets every change of the engine's state, on the engine's
// goroutines.
func (c *client) onChange(st syncclient.State) {
	c.checkUpdateOnConnect(st)
	for _, m := range c.ann.stateEvents(st) {
		c.post(m)
	}
	for _, m := range c.ann.rejectedEvents(st, c.w.ops) {
		c.post(m)
	}
	c.tellResults(st)
	c.tellAcked(st)
	c.dispatch(func(ctx app.Context) { c.w.update(ctx, st) })
}

// tellAcked tells the other tabs when this tab's connection took ops out
// of the shared outbox (the server answered them): a tab that is not
// connected (waiting for a login, say) reloads the storage, and would
// otherwise go on showing them as waiting, on a cart older than the one
// stored. A connected tab hears of them from the server, and does not
// reload; a tab that is not connected tells nothing, so a reload does not
// tell back.
func (c *client) tellAcked(st syncclient.State) {
	prev := c.pending.Swap(int64(st.Pending))
	if int64(st.Pending) < prev && (st.Status == syncclient.Synced || st.Status == syncclient.Syncing) {
		c.tellTabs(map[string]any{"acked": true})
	}
}

// checkUpdateOnConnect asks the browser to look for a new version of the
// widget whenever the engine gets a connection, the first included. The
// browser looks by itself only when the page is navigated to, and the widget
// when the page is shown again: a tab open in the foreground would run the
// old version after a deploy for as long as it stays open. A deploy restarts
// the server, which ends every connection: the next one is with the new
// version. The page may also have loaded offline, when the browser could not
// look. If there is a new version, OnAppUpdate follows.
func (c *client) checkUpdateOnConnect(st syncclient.State) {
	up := st.Status == syncclient.Syncing || st.Status == syncclient.Synced
	if c.connected.Swap(up) != up && up {
		app.TryUpdate()
	}
}

// dispatch runs f on the UI goroutine, then renders.
func (c *client) dispatch(f func(ctx app.Context)) {
	c.ctx.Dispatch(func(ctx app.Context) {
		f(ctx)
		c.w.afterRender(ctx)
	})
}

// post posts a bridge message to the host, if there is one.
func (c *client) post(msg []byte) {
	if msg == nil || c.parent == nil {
		return
	}
	obj := app.Window().Get("JSON").Call("parse", string(msg))
	c.parent.Call("postMessage", obj, c.host)
}

// onMessage takes the host's requests: only from window.parent at the host's
// origin, and only bridge messages. It queues them without blocking.
func (c *client) onMessage(_ app.Value, args []app.Value) any {
	if len(args) == 0 {
		return nil
	}
	ev := args[0]
	if !ev.Get("source").Equal(c.parent) || ev.Get("origin").String() != c.host {
		return nil
	}
	data := ev.Get("data")
	if data.Type() != app.TypeObject {
		return nil
	}
	if v := data.Get("cartsync"); v.Type() != app.TypeNumber || v.Float() != bridgeVersion {
		return nil
	}
	s, ok := stringify(data)
	if !ok || len(s) > maxRequestBytes {
		c.log.Warn("bridge message not readable or too large")
		return nil
	}
	req, err := decodeRequest([]byte(s))
	if err != nil {
		return nil // not a request: nothing to answer
	}
	c.jobs.push(func(ctx context.Context) {
		result, err := c.exec(ctx, req)
		if answer, ok := result.(later); ok {
			// Waiting for the server: off the queue, so that the
			// requests behind it are not held up.
			c.ctx.Async(func() {
				result, err := answer(c.run)
				c.post(encodeReply(req.id, result, err))
			})
			return
		}
		c.post(encodeReply(req.id, result, err))
	})
	return nil
}

// pushDelay is how long the engine holds a push after an edit
// (syncclient.Config.PushDelay): the reply to the host page, the shopper's
// next clicks and the panel's update then go before the send, its ack and
// the ack's storage write, and edits made close together go in one push.
// Other devices see an edit that much later. In docs/benchmarks.md
// (2026-12-03, late night) it cut back-to-back adds' p50 by about a third.
const pushDelay = 20 * time.Millisecond

// logOut shows this device's own cart again (Engine.SetUserWait with no
// user), and tells the shopper if an account's cart was shown.
func (c *client) logOut(eng *syncclient.Engine) (*syncclient.UserWait, error) {
	c.loggedIn.Store(false)
	before := eng.Snapshot()
	uw, err := eng.SetUserWait("", "")
	if err != nil {
		return nil, err
	}
	c.dispatch(func(app.Context) { c.w.loggedOut(before) })
	return uw, nil
}

// clampedAdd reports whether an add of qty to a line that held before
// was limited to the most a line may hold, max, now that it holds after.
// The two quantities are read on either side of the add, and another tab
// or a push may change the line between: only a line at max after an add
// that would have passed it was limited by this add.
func clampedAdd(before, qty, after, max int) bool {
	return before+qty > max && after == max
}

// loginWait bounds the wait for the server's answer to a login or logout
// (embed.js gives up on a request after 15 s); without one by then, it is
// answered as queued. A variable for the tests.
var loginWait = 10 * time.Second

// later is the result of a request answered once something else happened
// (the server answered a login): exec has done its part, in order with the
// other requests, and the reply is the function's.
type later func(ctx context.Context) (any, error)

// stringify returns JSON.stringify(v); false if it throws (cycles, BigInt).
func stringify(v app.Value) (s string, ok bool) {
	defer func() {
		if recover() != nil {
			s, ok = "", false
		}
	}()
	r := app.Window().Get("JSON").Call("stringify", v)
	if r.Type() != app.TypeString {
		return "", false
	}
	return r.String(), true
}

// exec carries out a request from the host. Edits return once stored.
func (c *client) exec(ctx context.Context, req request) (any, error) {
	call, err := parseCall(req)
	if err != nil {
		return nil, err
	}
	if call.method == methodTheme {
		return c.theme(call.theme) // language.go; needs no engine
	}
	eng := c.eng.Load()
	if eng == nil {
		return nil, &bridgeError{code: codeInternal, message: "the cart could not be opened"}
	}
	switch call.method {
	case methodAdd:
		key := cart.LineKey(call.sku, call.opts)
		before := 0
		if l := eng.Snapshot().Cart.Line(key); l != nil {
			before = l.Quantity
		}
		if err := eng.Add(ctx, call.sku, call.opts, call.qty, call.details); err != nil {
			return nil, err
		}
		c.edited()
		st := eng.Snapshot()
		if l := st.Cart.Line(key); l != nil {
			name, clamped := lineName(l), clampedAdd(before, call.qty, l.Quantity, eng.Limits().MaxQuantity)
			c.dispatch(func(app.Context) {
				c.w.show(st) // the count said is the cart's with the add
				note := ""
				if clamped {
					note = clampedText(name, l.Quantity)
				}
				c.w.added(name, note)
			})
		}
		return cartOf(st), nil
	case methodSetQuantity:
		// The server refuses a set on a line it does not have, but only
		// later, and the shopper would be told of an edit the page made.
		// The page asks about the cart it sees: answer now (semantics.md,
		// the set rule), after the checks every edit gets.
		key := cart.LineKey(call.sku, call.opts)
		if eng.Snapshot().Cart.Line(key) == nil {
			op := cart.Op{Client: "c", Seq: 1, Kind: cart.KindSet, SKU: call.sku, Options: call.opts, Quantity: call.qty}
			if ce := op.Validate(cart.DefaultLimits); ce != nil {
				return nil, ce
			}
			return nil, &cart.Error{Code: cart.CodeLineNotFound, Message: fmt.Sprintf("the cart has no line %q", key)}
		}
		err = eng.SetQuantity(ctx, call.sku, call.opts, call.qty)
	case methodRemove:
		err = eng.Remove(ctx, call.sku, call.opts)
	case methodClear:
		err = eng.Clear(ctx)
	case methodCart:
		return cartOf(eng.Snapshot()), nil
	case methodOpen, methodClose:
		open := call.method == methodOpen
		c.dispatch(func(ctx app.Context) { c.w.setOpen(ctx, open) })
		return true, nil
	case methodLogin:
		c.loggedIn.Store(true)
		c.noteLogin()
		c.dispatch(func(app.Context) { c.w.dropNote(tr(noteSignedOut)) })
		// The engine reconnects with the token at once; the reply
		// waits for the server's answer. The merge and the user's cart
		// are also told as events.
		uw, err := eng.SetUserWait(call.token, call.policy)
		if err != nil {
			return nil, badRequest("%v", err)
		}
		return later(func(ctx context.Context) (any, error) { return c.loginAnswer(ctx, eng, uw) }), nil
	case methodLogout:
		// The server gives this device a fresh guest cart at the next
		// hello; the user's cart stays on the server, and edits made on
		// it and not sent yet are kept for the user's next login.
		uw, err := c.logOut(eng)
		if err != nil {
			return nil, err
		}
		// The storefront's session is the device's: its other tabs log
		// out too, rather than keep showing the account's cart.
		c.tellTabs(map[string]any{"logout": true})
		c.noteLogout()
		return later(func(ctx context.Context) (any, error) { return c.loginAnswer(ctx, eng, uw) }), nil
	}
	if err != nil {
		return nil, err
	}
	c.edited()
	return cartOf(eng.Snapshot()), nil
}

// loginAnswer waits for the server's answer to a login or logout: the
// account's cart and what the login merge did, or the server's refusal of
// the user token (token_expired, unauthorized). Offline, or without an
// answer within loginWait, it answers queued: the engine presents the login
// at its next connection, and the events tell the outcome.
func (c *client) loginAnswer(ctx context.Context, eng *syncclient.Engine, uw *syncclient.UserWait) (any, error) {
	queued := func() (any, error) {
		return loginData{Status: loginQueued, Cart: cartOf(eng.Snapshot())}, nil
	}
	if browserOffline() {
		return queued()
	}
	wctx, cancel := context.WithTimeout(ctx, loginWait)
	defer cancel()
	r, err := uw.Wait(wctx)
	switch {
	case err == nil:
		return loginOf(r), nil
	case wctx.Err() != nil && ctx.Err() == nil:
		return queued()
	}
	return nil, err
}

// browserOffline reports whether the browser knows it has no network.
func browserOffline() bool {
	nav := app.Window().Get("navigator")
	if !nav.Truthy() {
		return false
	}
	on := nav.Get("onLine")
	return on.Type() == app.TypeBoolean && !on.Bool()
}
