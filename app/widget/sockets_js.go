//go:build js && wasm

package widget

import (
	"slices"
	"sync"
	"syscall/js"
)

// sockets keeps the WebSockets the widget's page opens, so that it can
// close them as the page goes into the back/forward cache: the browser
// keeps a cached page's socket open on the wire (and on restore shows it
// closed without having closed it), and the cart server would hold one
// more connection for every Back through a page with the cart. The sync
// engine opens its sockets through the page's WebSocket constructor
// (coder/websocket), which track wraps.
type sockets struct {
	mu   sync.Mutex
	open []js.Value
	orig js.Value
	fn   js.Func
}

// track wraps the page's WebSocket constructor to keep what it opens.
func (s *sockets) track() {
	win := js.Global()
	orig := win.Get("WebSocket")
	if orig.Type() != js.TypeFunction {
		return
	}
	s.orig = orig
	s.fn = js.FuncOf(func(_ js.Value, args []js.Value) any {
		a := make([]any, len(args))
		for i, v := range args {
			a[i] = v
		}
		ws := orig.New(a...)
		s.mu.Lock()
		s.open = append(slices.DeleteFunc(s.open, closing), ws)
		s.mu.Unlock()
		return ws
	})
	win.Set("WebSocket", s.fn)
}

// untrack puts the page's constructor back.
func (s *sockets) untrack() {
	if s.orig.Type() != js.TypeFunction {
		return
	}
	js.Global().Set("WebSocket", s.orig)
	s.fn.Release()
	s.orig = js.Undefined()
}

// closeAll closes the sockets still open, as a page going away does: the
// server sees the close at once. The engine, told by its socket, dials
// again when the page is back (start's pageshow).
func (s *sockets) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ws := range s.open {
		if !closing(ws) {
			ws.Call("close", 1000, "the page went into the back/forward cache")
		}
	}
	s.open = nil
}

// closing reports whether ws is closing or closed (readyState 2 or 3).
func closing(ws js.Value) bool { return ws.Get("readyState").Int() >= 2 }
