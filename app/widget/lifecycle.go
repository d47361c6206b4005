package widget

import (
	"strconv"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// The page's life: hidden, frozen, left, kept in the back/forward cache,
// shown again; and the channel to the store's other tabs.

// listenLifecycle listens to the page's life (start).
func (c *client) listenLifecycle(win, doc app.Value) {
	// Hidden or left, the widget reads nothing from IndexedDB: the page may
	// be frozen within milliseconds, and a transaction caught by the
	// freeze holds the database from the store's other tabs for about a
	// minute; and a page reading it, or listening on the tabs' channel,
	// is kept out of the back/forward cache. It only wakes the sender,
	// for one more try with what it holds. Shown, resumed or restored, it
	// reads what other tabs stored meanwhile.
	c.listen(win, "pagehide", func(_ app.Value, args []app.Value) any {
		c.wake()
		if len(args) > 0 && args[0].Get("persisted").Bool() {
			// Into the back/forward cache: nothing of it stays open.
			// The connection closed here is the widget's own doing,
			// not the network's: neither its end nor the next one is
			// announced.
			c.w.cached.Store(true)
			c.closeTabs()
			c.socks.closeAll()
		}
		return nil
	})
	c.listen(win, "pageshow", func(_ app.Value, args []app.Value) any {
		if len(args) > 0 && args[0].Get("persisted").Bool() {
			c.openTabs()
			c.loggedOutMeanwhile()
			c.reloadSoon()
			c.reconnect("the page came back from the back/forward cache")
			n := c.w.restores.Add(1)
			time.AfterFunc(restoreGrace, func() {
				c.dispatch(func(app.Context) {
					if c.w.restores.Load() == n {
						c.w.restoreGraceOver()
					}
				})
			})
		}
		return nil
	})
	c.listen(doc, "resume", func(app.Value, []app.Value) any {
		c.reloadSoon()
		return nil
	})
	c.listen(doc, "visibilitychange", func(app.Value, []app.Value) any {
		if pageHidden() {
			c.wake()
		} else {
			c.reloadSoon()
			c.loggedOutMeanwhile()
			app.TryUpdate()
		}
		return nil
	})
}

// restoreGrace is how long a page back from the back/forward cache has to
// connect before the live region tells it is offline.
const restoreGrace = 5 * time.Second

// pageHidden reports whether the page is hidden (and so may be frozen at
// any moment).
func pageHidden() bool {
	return app.Window().Get("document").Get("visibilityState").String() == "hidden"
}

// openTabs opens the channel to the store's other tabs, if the browser has
// one and it is not open.
func (c *client) openTabs() {
	c.tabsMu.Lock()
	defer c.tabsMu.Unlock()
	if c.tabs != nil {
		return
	}
	if bc := app.Window().Get("BroadcastChannel"); bc.Truthy() {
		c.tabs = bc.New(tabsChannel)
		c.tabsFn = app.FuncOf(c.onTabMessage)
		c.tabs.Call("addEventListener", "message", c.tabsFn)
	}
}

// closeTabs closes the channel to the other tabs, if open.
func (c *client) closeTabs() {
	c.tabsMu.Lock()
	defer c.tabsMu.Unlock()
	if c.tabs == nil {
		return
	}
	c.tabs.Call("removeEventListener", "message", c.tabsFn)
	c.tabs.Call("close")
	c.tabsFn.Release()
	c.tabs = nil
}

// tellTabs posts msg to the store's other tabs, if the channel is open.
func (c *client) tellTabs(msg map[string]any) {
	c.tabsMu.Lock()
	defer c.tabsMu.Unlock()
	if c.tabs != nil {
		c.tabs.Call("postMessage", app.ValueOf(msg))
	}
}

// wake asks the engine to send what it holds, without reading the
// storage (Engine.Wake).
func (c *client) wake() {
	if eng := c.eng.Load(); eng != nil {
		eng.Wake()
	}
}

// logoutKey is the localStorage key of the time of the device's last
// logout (milliseconds since the epoch), for the tabs that were not there
// to hear it.
const logoutKey = "cartsync.logout"

// noteLogout records a logout the host asked for, for the tabs that do not
// hear it on the channel: a page in the back/forward cache (its channel is
// closed) comes back logged in otherwise, showing the account's cart.
func (c *client) noteLogout() {
	defer func() { _ = recover() }() // storage refused: the channel still tells the open tabs
	app.Window().Get("localStorage").Call("setItem", logoutKey, strconv.FormatInt(time.Now().UnixMilli(), 10))
}

// noteLogin records when this page's host logged in.
func (c *client) noteLogin() { c.loginAt.Store(time.Now().UnixMilli()) }

// loggedOutMeanwhile logs this page out, once shown, if another tab logged
// the device out after this page's login (while this page was in the
// back/forward cache, or hidden), and then does what another tab asked
// while it was hidden.
func (c *client) loggedOutMeanwhile() {
	if c.loggedIn.Load() && lastLogout() > c.loginAt.Load() {
		c.logoutLater.Store(true)
	}
	c.logOutAsTold()
}

// lastLogout returns the time of the device's last logout, as noteLogout
// stored it; 0 for none, or when the storage cannot be read.
func lastLogout() (ms int64) {
	defer func() {
		if recover() != nil {
			ms = 0
		}
	}()
	v := app.Window().Get("localStorage").Call("getItem", logoutKey)
	if v.Type() != app.TypeString {
		return 0
	}
	ms, _ = strconv.ParseInt(v.String(), 10, 64)
	return ms
}
