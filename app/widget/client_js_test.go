//go:build js && wasm

package widget

import (
	"context"
	"strings"
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/syncclient"
)

// These tests run the JavaScript side of the client in a real browser
// (go test -exec wasmbrowsertest), without go-app's engine.

const testHost = "https://shop.example"

// fakeParent is a window.parent that records what is posted to it.
type fakeParent struct {
	obj   app.Value
	fn    app.Func
	posts []string // "targetOrigin JSON"
}

func newFakeParent(t *testing.T) *fakeParent {
	p := &fakeParent{obj: app.Window().Get("Object").New()}
	p.fn = app.FuncOf(func(_ app.Value, args []app.Value) any {
		s := app.Window().Get("JSON").Call("stringify", args[0]).String()
		p.posts = append(p.posts, args[1].String()+" "+s)
		return nil
	})
	p.obj.Set("postMessage", p.fn)
	t.Cleanup(p.fn.Release)
	return p
}

func jsObject(t *testing.T, json string) app.Value {
	t.Helper()
	return app.Window().Get("JSON").Call("parse", json)
}

// drain runs the client's queued jobs.
func drain(c *client) {
	ctx, cancel := context.WithCancel(context.Background())
	c.jobs.push(func(context.Context) { cancel() })
	c.jobs.run(ctx)
}

func TestOnMessageChecksSourceOriginAndShape(t *testing.T) {
	parent := newFakeParent(t)
	other := app.Window().Get("Object").New()
	eng, err := syncclient.New(syncclient.Config{Storage: syncclient.NewMemStorage(), Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	c := &client{log: discardLogger(), jobs: newQueue(), parent: parent.obj, host: testHost}
	c.eng.Store(eng)

	cyclic := jsObject(t, `{"cartsync":1,"id":9,"method":"cart","args":[]}`)
	cyclic.Set("self", cyclic)

	tests := []struct {
		name   string
		source app.Value
		origin string
		data   app.Value
		want   string // the post, "" for none
	}{
		{"request", parent.obj, testHost, jsObject(t, `{"cartsync":1,"id":1,"method":"cart","args":[]}`),
			testHost + ` {"cartsync":1,"id":1,"result":{"id":"","lines":[],"items":0,"version":0,"synced":true,"pending":0,"status":"offline"}}`},
		{"unknown method", parent.obj, testHost, jsObject(t, `{"cartsync":1,"id":2,"method":"nope"}`),
			testHost + ` {"cartsync":1,"id":2,"error":{"code":"unknown_method","message":"unknown method \"nope\""}}`},
		{"other origin", parent.obj, "https://evil.example", jsObject(t, `{"cartsync":1,"id":3,"method":"cart"}`), ""},
		{"other source", other, testHost, jsObject(t, `{"cartsync":1,"id":4,"method":"cart"}`), ""},
		{"other version", parent.obj, testHost, jsObject(t, `{"cartsync":2,"id":5,"method":"cart"}`), ""},
		{"version as a string", parent.obj, testHost, jsObject(t, `{"cartsync":"1","id":6,"method":"cart"}`), ""},
		{"a string", parent.obj, testHost, app.ValueOf(`{"cartsync":1,"id":7,"method":"cart"}`), ""},
		{"an event", parent.obj, testHost, jsObject(t, `{"cartsync":1,"event":"ready","data":{}}`), ""},
		{"not serializable", parent.obj, testHost, cyclic, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent.posts = nil
			ev := app.Window().Get("Object").New()
			ev.Set("source", tt.source)
			ev.Set("origin", tt.origin)
			ev.Set("data", tt.data)
			c.onMessage(app.Undefined(), []app.Value{ev})
			drain(c)
			switch {
			case tt.want == "" && len(parent.posts) != 0:
				t.Errorf("posted %q, want nothing", parent.posts)
			case tt.want != "" && (len(parent.posts) != 1 || parent.posts[0] != tt.want):
				t.Errorf("posted %q, want %q", parent.posts, tt.want)
			}
		})
	}
}

func TestStandaloneClientPostsNothing(t *testing.T) {
	c := &client{log: discardLogger()}
	c.post(encodeEvent(eventReady, cartOf(syncclient.State{}))) // must not panic
	c.measure(false)
}

// focusTrap builds a panel with three buttons and returns them.
func focusTrap(t *testing.T) (panel app.Value, buttons []app.Value) {
	doc := app.Window().Get("document")
	panel = doc.Call("createElement", "div")
	panel.Set("id", panelID)
	panel.Set("tabIndex", -1)
	for i := range 3 {
		b := doc.Call("createElement", "button")
		b.Set("textContent", strings.Repeat("x", i+1))
		panel.Call("appendChild", b)
		buttons = append(buttons, b)
	}
	disabled := doc.Call("createElement", "button")
	disabled.Set("disabled", true)
	panel.Call("appendChild", disabled) // never focusable: not the last stop
	doc.Get("body").Call("appendChild", panel)
	t.Cleanup(func() { panel.Call("remove") })
	return panel, buttons
}

// keyEvent is a keydown event that records preventDefault.
func keyEvent(t *testing.T) (ev app.Value, prevented *bool) {
	prevented = new(bool)
	ev = app.Window().Get("Object").New()
	fn := app.FuncOf(func(app.Value, []app.Value) any { *prevented = true; return nil })
	t.Cleanup(fn.Release)
	ev.Set("preventDefault", fn)
	return ev, prevented
}

func TestTrapTab(t *testing.T) {
	panel, b := focusTrap(t)
	doc := app.Window().Get("document")
	active := func() app.Value { return doc.Get("activeElement") }

	tests := []struct {
		name      string
		from      app.Value // nil: the focus is outside the panel
		back      bool
		to        app.Value // nil: the browser moves it (not prevented)
		prevented bool
	}{
		{"tab on the last wraps to the first", b[2], false, b[0], true},
		{"shift+tab on the first wraps to the last", b[0], true, b[2], true},
		{"shift+tab on the panel goes to the last", panel, true, b[2], true},
		{"tab in the middle is the browser's", b[1], false, nil, false},
		{"shift+tab in the middle is the browser's", b[1], true, nil, false},
		{"tab from outside comes back in", nil, false, b[0], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.from != nil {
				tt.from.Call("focus")
			} else {
				active().Call("blur")
			}
			ev, prevented := keyEvent(t)
			trapTab(ev, tt.back)
			if *prevented != tt.prevented {
				t.Errorf("prevented = %v, want %v", *prevented, tt.prevented)
			}
			if tt.to != nil && !active().Equal(tt.to) {
				t.Errorf("focus on %s, want %s", active().Get("textContent").String(), tt.to.Get("textContent").String())
			}
		})
	}

	// The focus goes back into the panel when its element is gone.
	b[1].Call("focus")
	b[1].Call("remove")
	(&client{}).keepFocusInPanel()
	if !active().Equal(panel) {
		t.Errorf("focus on %v after its element was removed, want the panel", active().Get("tagName"))
	}
}

func TestConsoleLoggerWritesToTheConsole(t *testing.T) {
	console := app.Window().Get("console")
	var got []string
	for _, method := range []string{"info", "warn", "error", "debug"} {
		saved := console.Get(method)
		fn := app.FuncOf(func(_ app.Value, args []app.Value) any {
			got = append(got, method+": "+args[0].String())
			return nil
		})
		console.Set(method, fn)
		t.Cleanup(func() {
			console.Set(method, saved)
			fn.Release()
		})
	}
	var log syncclient.Logger = consoleLogger{}
	log.Debug("not shown", "k", 1)
	log.Info("opened", "cart", "c-1")
	log.Warn("bad message from the server", "err", "unexpected EOF")
	log.Error("open IndexedDB", "err", "quota")
	want := []string{
		"info: cartsync: opened cart=c-1",
		`warn: cartsync: bad message from the server err="unexpected EOF"`,
		"error: cartsync: open IndexedDB err=quota",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("console got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
