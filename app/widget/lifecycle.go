package widget

import (
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
			c.closeTabs()
			c.socks.closeAll()
		}
		return nil
	})
	c.listen(win, "pageshow", func(_ app.Value, args []app.Value) any {
		if len(args) > 0 && args[0].Get("persisted").Bool() {
			c.openTabs()
			c.reloadSoon()
			c.reconnect("the page came back from the back/forward cache")
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
			c.logOutAsTold()
			app.TryUpdate()
		}
		return nil
	})
}

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
