package widget

import (
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// What screen readers hear, the undo of a removal, and where the focus goes
// when what had it goes away.
//
// One polite live region (liveID) sits in the frame next to the cart
// button, outside the dialog, so it exists while the panel is closed too.
// It tells what the shopper would otherwise miss: an item added from the
// page, a quantity changed with the panel's buttons, a removal and its
// undo, going offline and back, a sync that stopped, an edit the server
// refused or reduced, items the catalog changed, what a login merge did. Nothing in the open
// panel is live besides the checkout note (an alert that answers the
// shopper's own click).

// Ids of what the live region says about the connection.
const (
	textOffline     = "live.offline"
	textBackOnline  = "live.online"
	textSignInAgain = "live.signin"
)

// pendingFocus is an element to focus once ready holds.
type pendingFocus struct {
	id    string
	ready func() bool
}

// removal is a line the shopper removed in the panel, for Undo: enough to
// add the same quantity with the same options and details again.
type removal struct {
	seq     int // tells this removal from a later one
	key     string
	name    string
	sku     string
	options map[string]string
	qty     int
	details cart.Details
	after   []string // the keys of the lines after it, in order, when it was removed
	gone    bool     // a state without the line was shown since
}

// say announces s in the live region. Saying the same words again is
// announced again: a no-break space is added or taken off.
func (w *Widget) say(s string) {
	if s == "" {
		return
	}
	if s == strings.TrimSuffix(w.said, "\u00a0") && !strings.HasSuffix(w.said, "\u00a0") {
		s += "\u00a0"
	}
	w.said = s
}

// renderLive draws the live region.
func (w *Widget) renderLive() app.UI {
	return app.Div().ID(liveID).Class("cartsync-sr").Role("status").Aria("live", "polite").Text(w.said)
}

// sayChange announces what changed between two engine states that the
// shopper did not just do and the screen would show only in the panel:
// going offline after having been connected and back online, a sign-in
// that is needed, an edit the server refused, items the catalog changed.
// Other transitions (connecting, syncing, synced) are not announced.
func (w *Widget) sayChange(old, st syncclient.State) {
	connected := st.Status == syncclient.Syncing || st.Status == syncclient.Synced
	wasConnected := old.Status == syncclient.Syncing || old.Status == syncclient.Synced
	told := st.CartExpired && !old.CartExpired
	if told {
		if connected && !wasConnected && w.wentOffline {
			// Back from an outage, and told on the way in (a device
			// that was away): both, in one message.
			w.wentOffline = false
			w.say(tr(textBackOnline) + " " + tr(handoverText(st)))
		} else {
			// The notice, not the reconnect that hands over the new
			// cart: quiet until the next connection is up, or for a few
			// seconds if the one that told it stays (a reply carried the
			// new cart).
			w.handover = w.clock().Add(handoverQuiet)
			w.say(tr(handoverText(st)))
		}
	}
	if st.CartErased && !old.CartErased && old.CartExpired {
		w.say(tr(erasedText)) // learnt with the cart, after the expiry
	}
	if !w.handover.IsZero() && !w.clock().Before(w.handover) {
		w.handover = time.Time{}
	}
	switch {
	case !w.handover.IsZero():
		if connected && !wasConnected {
			w.handover = time.Time{}
			w.wasOnline, w.wentOffline = true, false
		}
	case w.cached.Load():
		if connected && st.Status != old.Status {
			w.cached.Store(false)
			w.wasOnline, w.wentOffline = true, false
		}
	case connected && w.wentOffline:
		w.wentOffline = false
		w.say(tr(textBackOnline))
	case connected:
		w.wasOnline = true
	case st.Status == syncclient.Offline && w.wasOnline && !w.wentOffline:
		w.wentOffline = true
		w.say(tr(textOffline))
	}
	if st.NeedsLogin && !old.NeedsLogin {
		w.say(tr(textSignInAgain))
	}
	for _, rs := range [][2][]protocol.Result{{old.Rejected, st.Rejected}, {old.Reduced, st.Reduced}} {
		if r, ok := newest(rs[0], rs[1]); ok {
			// With the count: the add's own announcement counted what
			// was asked for.
			w.say(w.resultText(r) + " " + trn("live.items", w.items()))
		}
	}
	if n := len(st.Notices); n > len(old.Notices) && st.Choice == nil {
		w.say(noticesSummary(n))
	}
	if st.Elsewhere != nil && st.Elsewhere != old.Elsewhere {
		w.say(elsewhereText(st.Elsewhere))
	}
}

// restoreGraceOver ends the quiet that follows a return from the
// back/forward cache (restoreGrace after it): a page that has not connected
// since is told as offline, as a connection lost would be, and its
// next connection as back online. Without it, a network that was down when
// the page came back went untold until the page connected.
func (w *Widget) restoreGraceOver() {
	if !w.cached.Swap(false) {
		return // connected meanwhile
	}
	if w.st.Status == syncclient.Offline && w.wasOnline && !w.wentOffline {
		w.wentOffline = true
		w.say(tr(textOffline))
	}
}

// handoverQuiet bounds the live region's quiet about the connection while
// the server hands over a new cart.
const handoverQuiet = 3 * time.Second

// clock is the widget's time.
func (w *Widget) clock() time.Time {
	if w.now != nil {
		return w.now()
	}
	return time.Now()
}

// newest returns the last of now when it is not the last of before: an
// answer of the server that has just come.
func newest(before, now []protocol.Result) (protocol.Result, bool) {
	n, m := len(now), len(before)
	if n == 0 || (m > 0 && before[m-1].Client == now[n-1].Client && before[m-1].Seq == now[n-1].Seq) {
		return protocol.Result{}, false
	}
	return now[n-1], true
}

// added announces an item added from the page: "Added Mug. 3 items in
// cart.", and why its quantity was limited if it was (note, "" for none).
func (w *Widget) added(name, note string) {
	s := trn("live.added", w.items(), "name", name)
	if note != "" {
		w.addNote(note)
		s += " " + note
	}
	w.say(s)
}

// offerUndo keeps l for Undo, and says so. Undo has no time limit (a
// shopper who needs longer to reach it gets it): it is offered until the
// panel closes, another line is removed, or the line is back.
func (w *Widget) offerUndo(ctx app.Context, l *cart.Line) {
	w.undoSeq++
	w.undo = &removal{
		seq:     w.undoSeq,
		key:     l.Key,
		name:    lineName(l),
		sku:     l.SKU,
		options: maps.Clone(l.Options),
		qty:     l.Quantity,
		details: l.Details,
	}
	if c := w.st.Cart; c != nil {
		if i := slices.IndexFunc(c.Lines, func(o *cart.Line) bool { return o.Key == l.Key }); i >= 0 {
			for _, o := range c.Lines[i+1:] {
				w.undo.after = append(w.undo.after, o.Key)
			}
		}
	}
	w.say(tr("live.removed", "name", w.undo.name))
}

// before is the key of the line a removed line goes back before in c: the
// first of the lines that followed it that c still has, "" (last) for none.
func (r *removal) before(c *cart.Cart) string {
	for _, k := range r.after {
		if c != nil && c.Line(k) != nil {
			return k
		}
	}
	return ""
}

// onUndo adds the removed line again, with its quantity, options and
// details (an add op: the cart rules let an add follow a remove), and moves
// the focus to its Remove button once it is back.
func (w *Widget) onUndo(ctx app.Context, e app.Event) {
	r := w.undo
	if r == nil {
		return
	}
	w.undo = nil
	w.say(tr("live.restored", "name", r.name))
	w.focusLater(ctx, titleID) // until the line is back
	w.refocus = &pendingFocus{id: lineControlID("remove", r.key), ready: func() bool { return w.line(r.key) != nil }}
	if w.c != nil {
		w.c.undo(r)
	}
	w.afterRender(ctx)
}

// renderUndo draws the toast that offers Undo, or nil.
func (w *Widget) renderUndo() app.UI {
	if w.undo == nil {
		return nil
	}
	return app.Div().Class("cartsync-undo").Body(
		app.P().Text(tr("undo.removed", "name", w.undo.name)),
		app.Button().
			ID(undoID).
			Class("cartsync-undo-button").
			Type("button").
			Aria("label", tr("undo.label", "name", w.undo.name)).
			OnClick(w.onUndo).
			Text(tr("undo")),
	)
}

// onEscape closes the innermost thing open: the question whether to remove
// a line (the focus goes back to its Decrease button), else the panel.
func (w *Widget) onEscape(ctx app.Context) {
	if key := w.confirm; key != "" {
		w.confirm = ""
		w.focusLater(ctx, lineControlID("decrease", key))
		w.afterRender(ctx)
		return
	}
	w.setOpen(ctx, false)
}

// focusAfterRemove is where the focus goes when the line with key is
// removed: the next line's Remove button, else the previous line's, else
// the panel's title.
func (w *Widget) focusAfterRemove(key string) string {
	if w.st.Cart == nil {
		return titleID
	}
	lines := w.st.Cart.Lines
	for i, l := range lines {
		if l.Key != key {
			continue
		}
		switch {
		case i+1 < len(lines):
			return lineControlID("remove", lines[i+1].Key)
		case i > 0:
			return lineControlID("remove", lines[i-1].Key)
		}
	}
	return titleID
}

// lineControlID is the id of a line's control ("remove", "decrease"): the
// line's key may hold any character, so a hash of it.
func lineControlID(control, key string) string {
	h := fnv.New64a()
	h.Write([]byte(key))
	return "cartsync-" + control + "-" + strconv.FormatUint(h.Sum64(), 36)
}
