//go:build !js || !wasm

package widget

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// twoLines is a cart of 2 tees (size M) and a mug.
func twoLines() syncclient.State {
	return testState(syncclient.Synced, 0,
		testLine("TEE-01", "Tee", 2, 1999, "EUR", map[string]string{"size": "M"}),
		testLine("MUG-01", "Mug", 1, 1200, "EUR", nil),
	)
}

// drain runs the client's queued jobs.
func drain(c *client) {
	ctx, cancel := context.WithCancel(context.Background())
	c.jobs.push(func(context.Context) { cancel() })
	c.jobs.run(ctx)
}

func TestLiveRegionOutsideTheDialog(t *testing.T) {
	for _, open := range []bool{false, true} {
		w := &Widget{open: open}
		w.show(twoLines())
		w.added("Mug", "")
		mount(t, w)
		match(t, app.Div().ID(liveID).Class("cartsync-sr").Role("status").Aria("live", "polite"), w, 0, 1)
		match(t, app.Text("Added Mug. 3 items in cart."), w, 0, 1, 0)
		if open {
			// Nothing in the open panel is live.
			match(t, app.P().Class("cartsync-status").Text("Synced"), w, 0, 2, panelStatus)
			match(t, app.Div().Class("cartsync-notices"), w, 0, 2, panelNotices)
		}
	}
}

func TestSaySameWordsAgain(t *testing.T) {
	w := &Widget{}
	var got []string
	for range 3 {
		w.say("Back online.")
		got = append(got, w.said)
	}
	if want := []string{"Back online.", "Back online.\u00a0", "Back online."}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("said %q, want %q: each a change of the region's text", got, want)
	}
}

func TestSayChange(t *testing.T) {
	const (
		offline    = syncclient.Offline
		connecting = syncclient.Connecting
		syncing    = syncclient.Syncing
		synced     = syncclient.Synced
	)
	tests := []struct {
		name     string
		statuses []syncclient.Status
		want     string // a message id
	}{
		{"starting", []syncclient.Status{offline, connecting, synced}, ""},
		{"starting offline", []syncclient.Status{offline, connecting, offline}, ""},
		{"syncing an edit", []syncclient.Status{connecting, synced, syncing, synced}, ""},
		{"connection lost", []syncclient.Status{connecting, synced, offline}, textOffline},
		{"reconnecting", []syncclient.Status{connecting, synced, offline, connecting}, textOffline},
		{"back online", []syncclient.Status{connecting, synced, offline, connecting, syncing}, textBackOnline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Widget{}
			for _, s := range tt.statuses {
				w.show(testState(s, 0))
			}
			want := ""
			if tt.want != "" {
				want = tr(tt.want)
			}
			if w.said != want {
				t.Errorf("said %q, want %q", w.said, want)
			}
		})
	}
	// The server hands over a new cart (the old one expired, or was
	// erased) by ending the connection: told as the notice, not as going
	// offline and back online.
	t.Run("a cart handed over", func(t *testing.T) {
		w := &Widget{}
		var said []string
		show := func(st syncclient.State) {
			w.show(st)
			if len(said) == 0 || said[len(said)-1] != w.said {
				said = append(said, w.said)
			}
		}
		show(testState(connecting, 0))
		show(testState(synced, 0))
		st := testState(synced, 0)
		st.CartExpired = true
		show(st)
		for _, s := range []syncclient.Status{offline, connecting, synced} {
			st.Status = s
			show(st)
		}
		if want := []string{"", tr("notice.expired")}; strings.Join(said, "|") != strings.Join(want, "|") {
			t.Errorf("said %q, want %q", said, want)
		}
		st.Status = offline // a real outage after it is told again
		show(st)
		if w.said != tr(textOffline) {
			t.Errorf("after the handover, an outage: said %q, want %q", w.said, tr(textOffline))
		}
	})
	// Told on a connection that stays up (a reply carried the new cart):
	// the quiet ends after a few seconds, and a later outage is told.
	t.Run("a cart handed over on a connection that stays", func(t *testing.T) {
		now := time.Unix(1_700_000_000, 0)
		w := &Widget{now: func() time.Time { return now }}
		w.show(testState(connecting, 0))
		w.show(testState(synced, 0))
		st := testState(synced, 0)
		st.CartExpired = true
		w.show(st)
		st.Status = syncing
		w.show(st)
		now = now.Add(handoverQuiet)
		st.Status = offline
		w.show(st)
		if w.said != tr(textOffline) {
			t.Errorf("an outage after the notice: said %q, want %q", w.said, tr(textOffline))
		}
	})
	// A device that was away hears it is back and the notice at once,
	// and nothing later (it said "Back online." at the next change).
	t.Run("a device away told on its way back", func(t *testing.T) {
		w := &Widget{}
		for _, s := range []syncclient.Status{connecting, synced, offline, connecting} {
			w.show(testState(s, 0))
		}
		st := testState(synced, 0)
		st.CartExpired = true
		w.show(st)
		want := tr(textBackOnline) + " " + tr("notice.expired")
		if w.said != want {
			t.Fatalf("said %q, want %q", w.said, want)
		}
		st.CartExpired = false // acknowledged
		w.show(st)
		if w.said != want {
			t.Errorf("after the notice is acknowledged: said %q, want nothing new", w.said)
		}
	})
	t.Run("a cart erased at the shop's request", func(t *testing.T) {
		w := &Widget{}
		w.show(testState(synced, 0))
		st := testState(offline, 0)
		st.CartExpired = true // told first, the reason with the cart
		w.show(st)
		st.Status, st.CartErased = synced, true
		w.show(st)
		if want := tr(erasedText); w.said != want {
			t.Errorf("said %q, want %q", w.said, want)
		}
	})
	t.Run("sign in again", func(t *testing.T) {
		w := &Widget{}
		st := testState(synced, 0)
		w.show(st)
		st.NeedsLogin = true
		w.show(st)
		if want := tr(textSignInAgain); w.said != want {
			t.Errorf("said %q, want %q", w.said, want)
		}
	})
}

func TestRemoveOffersUndoAndMovesTheFocus(t *testing.T) {
	c, _, e := newTestClient(t)
	st := twoLines()
	tee, mug := st.Cart.Lines[0], st.Cart.Lines[1]
	tests := []struct {
		name   string
		remove *cart.Line
		want   string
	}{
		{"the first line: the next line", tee, lineControlID("remove", mug.Key)},
		{"the last line: the one before", mug, lineControlID("remove", tee.Key)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Widget{open: true}
			w.show(st)
			w.onRemove(c.ctx, tt.remove)
			if w.refocus == nil || w.refocus.id != tt.want || w.refocus.ready() {
				t.Fatalf("after Remove the focus goes to %+v, want %s once the line is gone", w.refocus, tt.want)
			}
			var rest []*cart.Line
			for _, l := range st.Cart.Lines {
				if l != tt.remove {
					rest = append(rest, l)
				}
			}
			w.show(testState(syncclient.Synced, 0, rest...))
			if !w.refocus.ready() {
				t.Errorf("the line is gone and the focus waits")
			}
			name := lineName(tt.remove)
			if want := "Removed " + name + ". Undo is available until you close the cart."; w.said != want {
				t.Errorf("said %q, want %q", w.said, want)
			}
			mount(t, w)
			toast := []int{0, 2, panelFoot, 0}
			match(t, app.Div().Class("cartsync-undo"), w, toast...)
			match(t, app.Text("Removed "+name+"."), w, at(toast, 0, 0)...)
			match(t, app.Button().ID(undoID).Class("cartsync-undo-button").Type("button").
				Aria("label", "Undo removing "+name).OnClick(noop).Text("Undo"), w, at(toast, 1)...)
		})
	}
	e.ConsumeAll()

	t.Run("the only line: the title", func(t *testing.T) {
		w := &Widget{open: true}
		w.show(testState(syncclient.Synced, 0, mug))
		w.onRemove(c.ctx, mug)
		if w.refocus == nil || w.refocus.id != titleID {
			t.Errorf("after Remove the focus goes to %+v, want the title", w.refocus)
		}
	})
	e.ConsumeAll()

	t.Run("the undo stays until the line is back", func(t *testing.T) {
		w := &Widget{open: true}
		w.show(st)
		w.onRemove(c.ctx, tee)
		w.onRemove(c.ctx, mug)
		if w.undo == nil || w.undo.name != "Mug" {
			t.Fatalf("after two removals the undo is %+v, want the mug's", w.undo)
		}
		w.show(st) // from before the removal went through: the mug still there
		if w.undo == nil {
			t.Fatal("the undo went on a state from before the removal")
		}
		w.show(testState(syncclient.Synced, 0))
		if w.undo == nil {
			t.Fatal("the undo went without the line coming back")
		}
		w.show(testState(syncclient.Synced, 0, mug)) // added again, here or elsewhere
		if w.undo != nil {
			t.Errorf("undo %+v with the line back", w.undo)
		}
	})
	e.ConsumeAll()
}

// TestUndoRestoresTheLine removes a line through the engine and undoes it:
// the same quantity, options and details are back, and the focus goes to
// the line's Remove button once it is shown.
func TestUndoRestoresTheLine(t *testing.T) {
	c, w, e := newTestClient(t)
	eng := c.eng.Load()
	ctx := context.Background()
	if err := eng.Add(ctx, "TEE-01", map[string]string{"size": "M"}, 2, &cart.Details{Name: "Tee", Price: 1999, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Add(ctx, "MUG-01", nil, 1, &cart.Details{Name: "Mug"}); err != nil {
		t.Fatal(err)
	}
	e.ConsumeAll()
	w.open = true
	tee := *w.line(cart.LineKey("TEE-01", map[string]string{"size": "M"}))
	w.offerUndo(c.ctx, &tee) // without w.c, no timer: it would hold ConsumeAll
	c.remove(tee.Key)
	drain(c)
	e.ConsumeAll()
	if w.line(tee.Key) != nil {
		t.Fatal("the tee is still shown after Remove")
	}

	r := *w.undo
	if fmt.Sprint(r.after) != "[MUG-01]" {
		t.Errorf("the removal keeps the lines after it as %q, want the mug", r.after)
	}
	w.onUndo(c.ctx, app.Event{})
	if w.undo != nil || w.said != "Tee is back in your cart." {
		t.Errorf("after Undo: undo %+v, said %q", w.undo, w.said)
	}
	if w.refocus == nil || w.refocus.id != lineControlID("remove", tee.Key) || w.refocus.ready() {
		t.Errorf("after Undo the focus goes to %+v, want the tee's Remove button once it is back", w.refocus)
	}
	c.undo(&r)
	drain(c)
	e.ConsumeAll()
	got := w.line(tee.Key)
	if got == nil || got.Quantity != 2 || got.Options["size"] != "M" || got.Details != tee.Details {
		t.Fatalf("after Undo the tee is %+v, want %+v", got, tee)
	}
	if ls := w.st.Cart.Lines; len(ls) != 2 || ls[0].Key != tee.Key {
		t.Errorf("after Undo the tee is not back in its place, first: %+v", ls)
	}
	if w.refocus == nil || !w.refocus.ready() {
		t.Errorf("the tee is back and the focus waits")
	}
}

func TestEscapeClosesTheInnermost(t *testing.T) {
	c, _, e := newTestClient(t)
	w := &Widget{}
	st := twoLines()
	w.show(st)
	w.setOpen(c.ctx, true)
	if w.focusNext != panelID {
		t.Errorf("on open the focus goes to %q, want the dialog", w.focusNext)
	}
	e.ConsumeAll()

	mug := st.Cart.Lines[1]
	w.onDecrease(c.ctx, mug) // 1 mug: asks before removing
	if w.confirm != mug.Key || w.focusNext != keepID {
		t.Fatalf("Decrease on 1 mug: confirm %q, focus %q; want the question, focus on Keep", w.confirm, w.focusNext)
	}
	e.ConsumeAll()

	w.onEscape(c.ctx)
	if w.confirm != "" || !w.open {
		t.Errorf("after Escape on the question: confirm %q, open %v; want the question closed, the panel open", w.confirm, w.open)
	}
	if want := lineControlID("decrease", mug.Key); w.focusNext != want {
		t.Errorf("after Escape on the question the focus goes to %q, want the mug's Decrease button %q", w.focusNext, want)
	}
	e.ConsumeAll()

	w.onEscape(c.ctx)
	if w.open || w.focusNext != buttonID {
		t.Errorf("after Escape: open %v, focus to %q; want closed, focus on the cart button", w.open, w.focusNext)
	}
	e.ConsumeAll()
}
