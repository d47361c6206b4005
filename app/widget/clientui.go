package widget

import (
	"context"
	"encoding/json"
	"errors"
	"math"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// The client's work for the panel: shopper actions from the UI, other tabs'
// news, the checkout handoff, keyboard focus and the frame's size.

// ackNotices tells the engine that the shopper saw the notices.
func (c *client) ackNotices() {
	c.jobs.push(func(context.Context) {
		if eng := c.eng.Load(); eng != nil {
			eng.AckNotices()
		}
	})
}

// choose sends the shopper's pick for a login merge. Nothing changes until
// the server answers with the merge; if the pick cannot be sent, the
// shopper is told and may pick again.
func (c *client) choose(policy cart.Policy) {
	eng := c.eng.Load()
	if eng == nil {
		return
	}
	c.ctx.Async(func() {
		ctx, cancel := context.WithTimeout(c.run, chooseWait)
		err := eng.Choose(ctx, policy)
		cancel()
		if err == nil {
			return
		}
		c.log.Warn("login choice not sent", logkey.Policy, policy, logkey.Err, err)
		c.dispatch(func(app.Context) {
			c.w.choosing = ""
			c.w.addNote(tr(noteChoiceNotSent))
		})
	})
}

// applyTheme sets the theme's CSS variables on the root element.
func (c *client) applyTheme(props map[string]string) {
	style := app.Window().Get("document").Get("documentElement").Get("style")
	for prop, v := range props {
		if v == "" {
			style.Call("removeProperty", prop)
		} else {
			style.Call("setProperty", prop, v)
		}
	}
}

// step changes a line's quantity by delta, from the quantity the line has
// when the edit is made (clicks in a row add up). It does not go below 1:
// the panel asks before removing.
func (c *client) step(key string, delta int) {
	c.jobs.push(func(ctx context.Context) {
		eng := c.eng.Load()
		if eng == nil {
			return
		}
		l := eng.Snapshot().Cart.Line(key)
		if l == nil || l.Quantity+delta < 1 {
			return
		}
		if most := eng.Limits().MaxQuantity; delta > 0 && l.Quantity >= most {
			// Say why, rather than "that quantity isn't possible".
			text := tr("line.at_most", "name", lineName(l), "count", most)
			c.dispatch(func(app.Context) { c.w.addNote(text) })
			return
		}
		q := l.Quantity + delta
		c.uiEditedSaying(lineName(l), eng.SetQuantity(ctx, l.SKU, l.Options, q), quantityText(lineName(l), q))
	})
}

// remove removes a line.
func (c *client) remove(key string) {
	c.jobs.push(func(ctx context.Context) {
		eng := c.eng.Load()
		if eng == nil {
			return
		}
		if l := eng.Snapshot().Cart.Line(key); l != nil {
			c.uiEdited(lineName(l), eng.Remove(ctx, l.SKU, l.Options))
		}
	})
}

// undo adds a removed line again (Widget.onUndo).
func (c *client) undo(r *removal) {
	c.jobs.push(func(ctx context.Context) {
		eng := c.eng.Load()
		if eng == nil {
			return
		}
		d := r.details
		c.uiEdited(r.name, eng.AddBefore(ctx, r.sku, r.options, r.qty, &d, r.before(eng.Snapshot().Cart)))
	})
}

// uiEdited reports the outcome of an edit made in the panel.
func (c *client) uiEdited(name string, err error) {
	if err == nil {
		c.edited()
		return
	}
	c.log.Warn("edit failed", logkey.Err, err)
	c.dispatch(func(app.Context) { c.w.addNote(editFailedText(name, err)) })
}

// uiEditedSaying is uiEdited that, when the edit was made, announces said
// in the live region: what a button in the panel did, which the screen
// would show only beside the button.
func (c *client) uiEditedSaying(name string, err error, said string) {
	c.uiEdited(name, err)
	if err == nil {
		c.dispatch(func(app.Context) { c.w.say(said) })
	}
}

// edited tells the other tabs that the stored outbox changed.
func (c *client) edited() {
	c.tellTabs(map[string]any{"changed": true})
}

// tellResults tells the other tabs of the refusals and reductions this
// tab's engine heard of: any connected tab sends the shared outbox, so the
// server's reply to an edit made in one tab may come to another. Each tab's panel,
// live region and page then say it, the tab where the shopper made the
// edit included.
func (c *client) tellResults(st syncclient.State) {
	c.toldMu.Lock()
	var fresh []protocol.Result
	told := make(map[protocol.OpID]bool, len(st.Rejected)+len(st.Reduced))
	for _, r := range answers(st) {
		id := protocol.OpID{Client: r.Client, Seq: r.Seq}
		told[id] = true
		if !c.told[id] {
			fresh = append(fresh, r)
		}
	}
	c.told = told
	c.toldMu.Unlock()
	if len(fresh) > 0 {
		c.tellTabs(map[string]any{"results": string(mustJSON(fresh))})
	}
}

// heardResults takes the results another tab told of (tellResults) into
// this tab's engine, without telling them back.
func (c *client) heardResults(data string) {
	var rs []protocol.Result
	if len(data) > maxRequestBytes || json.Unmarshal([]byte(data), &rs) != nil || len(rs) == 0 {
		return
	}
	c.toldMu.Lock()
	if c.told == nil {
		c.told = make(map[protocol.OpID]bool, len(rs))
	}
	for _, r := range rs {
		c.told[protocol.OpID{Client: r.Client, Seq: r.Seq}] = true
	}
	c.toldMu.Unlock()
	c.jobs.push(func(context.Context) {
		if eng := c.eng.Load(); eng != nil {
			eng.NoteResults(rs...)
		}
	})
	// The ops are out of the shared outbox now: show the cart without
	// them (and count its items right in what is announced).
	c.reloadSoon()
}

// onTabMessage reloads the storage when another tab edited it.
func (c *client) onTabMessage(_ app.Value, args []app.Value) any {
	if len(args) == 0 {
		return nil
	}
	d := args[0].Get("data")
	if d.Type() == app.TypeObject {
		if ch := d.Get("changed"); ch.Type() == app.TypeBoolean && ch.Bool() {
			c.reloadSoon()
		}
		if ak := d.Get("acked"); ak.Type() == app.TypeBoolean && ak.Bool() && !c.connected.Load() {
			c.reloadSoon() // tellAcked
		}
		if rj := d.Get("results"); rj.Type() == app.TypeString {
			c.heardResults(rj.String())
		}
		if lo := d.Get("logout"); lo.Type() == app.TypeBoolean && lo.Bool() && c.loggedIn.Load() {
			// Only a tab logged in: another stays as it is, connection
			// and all. A hidden page logs out once shown (reloadSoon
			// says why it waits).
			c.logoutLater.Store(true)
			c.logOutAsTold()
		}
	}
	return nil
}

// logOutAsTold logs out, once the page is shown, as another tab did.
func (c *client) logOutAsTold() {
	if pageHidden() || !c.logoutLater.CompareAndSwap(true, false) {
		return
	}
	c.jobs.push(func(context.Context) {
		if eng := c.eng.Load(); eng != nil && c.loggedIn.Load() {
			if _, err := c.logOut(eng); err != nil {
				c.log.Warn("log out as another tab did", logkey.Err, err)
			}
		}
	})
}

// reloadSoon queues a reload of the storage, which also wakes the sender;
// reloads asked for while one is queued are one. A hidden page does not
// read: the browser may freeze it at any moment (and delivers the other
// tabs' messages to a frozen page), and a transaction caught by a freeze
// holds IndexedDB from every other tab of the store until the browser gives
// up on it, about a minute. The other tabs send their own edits; the page
// reads what they stored once it is shown again (start's
// visibilitychange), and at every reconnection.
func (c *client) reloadSoon() {
	if pageHidden() {
		return
	}
	if !c.reloadQueued.CompareAndSwap(false, true) {
		return
	}
	c.jobs.push(func(ctx context.Context) {
		c.reloadQueued.Store(false)
		if eng := c.eng.Load(); eng != nil {
			if err := eng.Reload(ctx); err != nil {
				c.log.Warn("reload the stored cart", logkey.Err, err)
			}
		}
	})
}

// checkout waits, after the edits queued before it, for the pending edits
// to reach the server; then, if the cart is still the one the shopper
// reviewed and no notice stands, asks the server to check it out at that
// version and posts the checkout event with the checkout's id. A cart that
// moved, here or on the server, is shown on the review step again.
func (c *client) checkout(reviewed *cart.Cart) {
	c.jobs.push(func(context.Context) {
		eng := c.eng.Load()
		if eng == nil {
			return
		}
		c.ctx.Async(func() {
			ctx, cancel := context.WithTimeout(c.run, checkoutWait)
			defer cancel()
			again, note, event := c.handOver(ctx, eng, reviewed)
			c.post(event)
			c.dispatch(func(ctx app.Context) { c.w.checkedOut(ctx, again, note) })
		})
	})
}

// handOver is checkout's work off the UI goroutine. It returns why the
// review step must be shown again, or else what to tell the shopper, and
// the checkout event to post (nil for none).
func (c *client) handOver(ctx context.Context, eng *syncclient.Engine, reviewed *cart.Cart) (again, note string, event []byte) {
	if err := eng.Flush(ctx); err != nil {
		return "", noteUnsent, nil
	}
	st := eng.Snapshot()
	if c.parent == nil {
		return "", noteNoShop, nil
	}
	if why := reviewAgain(st.Cart, st.Notices, reviewed); why != "" {
		return why, "", nil
	}
	co, err := eng.Checkout(ctx, st.Confirmed)
	var conflict *syncclient.CheckoutConflict
	var pe *protocol.Error
	switch {
	case err == nil:
		return "", "", encodeEvent(eventCheckout, checkoutData{Cart: cartOf(st), Version: co.Version, CheckoutID: co.ID})
	case errors.As(err, &conflict):
		switch {
		case conflict.Err.Code == protocol.ErrCartEmpty:
			return reviewEmpty, "", nil
		case len(conflict.Cart.Notices) > 0:
			return reviewNotices, "", nil
		}
		return reviewChanged, "", nil
	case errors.As(err, &pe) && (pe.Code == protocol.ErrUnauthorized || pe.Code == protocol.ErrTokenExpired):
		c.log.Warn("checkout refused", logkey.Err, err)
		return "", checkoutSignIn, nil
	case browserOffline():
		return "", checkoutOffline, nil
	}
	c.log.Warn("checkout failed", logkey.Err, err)
	return "", checkoutFailed, nil
}

// onKeyDown keeps Tab inside the open panel and closes it on Escape. It runs
// in the JavaScript callback, so preventDefault takes effect.
func (c *client) onKeyDown(_ app.Value, args []app.Value) any {
	if !c.open.Load() || len(args) == 0 {
		return nil
	}
	ev := args[0]
	switch ev.Get("key").String() {
	case "Escape":
		ev.Call("preventDefault")
		c.ctx.Dispatch(func(ctx app.Context) { c.w.onEscape(ctx) })
	case "Tab":
		trapTab(ev, ev.Get("shiftKey").Truthy())
	}
	return nil
}

// trapTab wraps Tab and Shift+Tab around the panel's controls.
func trapTab(ev app.Value, back bool) {
	doc := app.Window().Get("document")
	panel := doc.Call("getElementById", panelID)
	if !panel.Truthy() {
		return
	}
	list := panel.Call("querySelectorAll", focusable)
	n := list.Length()
	if n == 0 {
		ev.Call("preventDefault")
		panel.Call("focus")
		return
	}
	first, last := list.Index(0), list.Index(n-1)
	active := doc.Get("activeElement")
	inside := active.Truthy() && panel.Call("contains", active).Bool()
	switch {
	case back && (!inside || active.Equal(first) || active.Equal(panel)):
		ev.Call("preventDefault")
		last.Call("focus")
	case !back && (!inside || active.Equal(last)):
		ev.Call("preventDefault")
		first.Call("focus")
	}
}

// onFrameFocus puts the focus back where the widget put it when the frame
// itself is focused: embed.js focuses the frame when the panel opens or
// closes (so that keys reach it), and the browser then drops the focus of
// the element inside it. Open, the focus goes back into the dialog; closed,
// to the cart button.
func (c *client) onFrameFocus(app.Value, []app.Value) any {
	if c.open.Load() {
		c.keepFocusInPanel()
		return nil
	}
	doc := app.Window().Get("document")
	if active := doc.Get("activeElement"); !active.Truthy() || active.Equal(doc.Get("body")) {
		c.focus(buttonID)
	}
	return nil
}

// focusIn reports whether the focus is on the element with id or inside it.
func (c *client) focusIn(id string) bool {
	doc := app.Window().Get("document")
	el, active := doc.Call("getElementById", id), doc.Get("activeElement")
	return el.Truthy() && active.Truthy() && el.Call("contains", active).Bool()
}

// focus focuses the element with id, and reports whether there is one.
func (c *client) focus(id string) bool {
	doc := app.Window().Get("document")
	el := doc.Call("getElementById", id)
	if !el.Truthy() {
		return false
	}
	if id == choiceID {
		// The choice is taller than the space between the sticky head
		// and foot: shown from its top, its heading clear of the head.
		el.Call("focus", map[string]any{"preventScroll": true})
		if p := doc.Call("getElementById", panelID); p.Truthy() {
			p.Set("scrollTop", 0)
		}
		return true
	}
	el.Call("focus")
	return true
}

// keepFocusInPanel moves the focus back into the open panel when the
// element that had it is gone: to the choice between two carts when one is
// shown (it is what the shopper must answer), else to the panel.
func (c *client) keepFocusInPanel() {
	doc := app.Window().Get("document")
	panel := doc.Call("getElementById", panelID)
	if !panel.Truthy() {
		return
	}
	if active := doc.Get("activeElement"); !active.Truthy() || !panel.Call("contains", active).Bool() {
		if choice := doc.Call("getElementById", choiceID); choice.Truthy() {
			choice.Call("focus")
			return
		}
		panel.Call("focus")
	}
}

// measure posts the widget's size to the host if it changed: the closed
// widget's box (the button), or the open panel's width and content height
// (the host makes it full height).
func (c *client) measure(open bool) {
	if c.parent == nil {
		return
	}
	doc := app.Window().Get("document")
	var size sizeData
	if open {
		panel := doc.Call("getElementById", panelID)
		if !panel.Truthy() {
			return
		}
		size = sizeData{Width: panelWidth, Height: panel.Get("scrollHeight").Int(), Open: true}
	} else {
		root := doc.Call("getElementById", rootID)
		if !root.Truthy() {
			return
		}
		// The root's own size, not its right and bottom edges: right to
		// left it sits at the frame's right edge, so the edge is the
		// frame's width, and the frame kept the open panel's.
		r := root.Call("getBoundingClientRect")
		size = sizeData{Width: int(math.Ceil(r.Get("width").Float())), Height: int(math.Ceil(r.Get("height").Float()))}
	}
	c.post(c.ann.resizeEvent(size))
}
