package widget

import (
	"cmp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// Routes registers the widget at "/". The wasm and the server that renders
// the page both call it.
func Routes() {
	app.Route("/", func() app.Composer { return &Widget{} })
}

// maxMessages is how many messages (refused edits, warnings) the panel
// shows at most, the most recent.
const maxMessages = 3

// Widget is the cart widget. Its fields are view state, read and written on
// the UI goroutine only; what runs for the page in the browser is in c.
type Widget struct {
	app.Compo

	st     syncclient.State // the engine's last state
	loaded bool             // st comes from the storage
	open   bool             // the panel is open
	review bool             // the panel shows the review step
	// confirm is the key of the line whose removal the shopper is asked
	// to confirm ("" for none).
	confirm string
	// notes are local warnings and failures to show with the rejections,
	// in the language they were told in.
	notes []string
	// dismissed are the rejections the shopper has dismissed.
	dismissed map[protocol.OpID]bool
	// storageNote is the id of the message saying why the cart is kept
	// in memory only ("" if it is stored).
	storageNote string
	// stopped is why syncing stopped for good (nil while it runs).
	stopped     error
	updateReady bool // a new version of the app is ready
	blocked     bool // framed by a page that may not embed the widget
	checkingOut bool
	// reviewed is the cart the review step showed the shopper, as it
	// was when they opened it or last changed it there; checkout hands
	// over only that cart.
	reviewed *cart.Cart
	// checkoutNote is the id of the message saying why the review step
	// is shown again or why checkout could not start ("" for nothing).
	checkoutNote string
	// checkoutMode is the theme's checkout mode: checkoutDirect adds
	// Checkout to the panel; anything else is checkoutReview.
	checkoutMode string
	// host is the storefront's origin, to resolve its image paths.
	host string
	// choosing is the policy the shopper picked for a login merge, sent
	// and not answered yet ("" for none).
	choosing cart.Policy
	// hiddenMerge is a merge whose notice is not shown any more
	// (dismissed, or its user logged out), until the engine drops it.
	hiddenMerge *protocol.MergeInfo
	// seenMerge and seenChoice are the merge and the choice the widget
	// opened the panel for, once each.
	seenMerge, seenChoice *protocol.MergeInfo

	// said is what the live region says (live.go).
	said string
	// wasOnline: the engine has been connected; wentOffline: it lost
	// the connection since, and the live region said so.
	wasOnline, wentOffline bool
	// handover: until then the server is handing over a new cart (the
	// old one expired or was erased) by ending the connection, which is
	// not the network's doing; zero for none.
	handover time.Time
	// now is the widget's clock (time.Now when nil; tests set it).
	now func() time.Time
	// cached: the page went into the back/forward cache, and the engine
	// has not been connected since it came back. The widget closed the
	// connection itself: neither its end nor the next one is news (set
	// by the page's listener, read on the UI goroutine).
	cached atomic.Bool
	// restores counts the page's returns from the back/forward cache (set
	// by the page's listener): a grace timer acts for the latest only.
	restores atomic.Int64
	// undo is the removal Undo is offered for (nil for none); undoSeq
	// counts removals.
	undo    *removal
	undoSeq int
	// focusNext is the id of the element to focus after the next render
	// ("" for none); refocus is where the focus goes once the cart shown
	// has caught up with an edit (nil for nowhere).
	focusNext string
	refocus   *pendingFocus
	// focusAsked is the last element focusLater was asked for, kept for
	// tests (focusNext is cleared once the focus moved).
	focusAsked string

	ops *opIndex
	c   *client // nil until mounted, and always natively
}

// OnInit prepares what the client and the rendering share.
func (w *Widget) OnInit() {
	if w.ops == nil {
		w.ops = &opIndex{}
	}
}

// show takes a new engine state.
func (w *Widget) show(st syncclient.State) {
	if w.ops != nil {
		w.ops.noteNames(st.Cart)
	}
	if st.Choice == nil || st.Choice != w.st.Choice {
		w.choosing = "" // answered, or asked again
	}
	if w.loaded && w.st.User != "" && st.User != "" && st.User != w.st.User {
		// Another account's cart (a login without a logout): the notes
		// about the last one's lines, and its review, are not this
		// one's. (A logout does the same: client.logOut. A state with
		// no user is not one: a login renewed hides the cart until the
		// server answers.)
		w.notes = nil
		w.endReview()
	}
	if w.review && !w.checkingOut && w.loaded && st.Confirmed != 0 && (st.Cart == nil || len(st.Cart.Lines) == 0) {
		// Everything removed elsewhere: the panel shows the empty cart,
		// not a review of nothing under its title.
		w.endReview()
	}
	switch {
	case !w.review:
	case unsent(st) > 0 || unsent(w.st) > 0:
		// The shopper's own edits (a fix on the review step) change
		// the cart they review, until the server has them.
		w.reviewed = st.Cart
	case w.reviewed != nil && quantitiesKey(st.Cart) != quantitiesKey(w.reviewed):
		// Another device or tab changed what is being reviewed: the
		// list shows it, and says so, and Checkout hands over what
		// the list shows.
		w.reviewed = st.Cart
		w.checkoutNote = reviewChanged
	}
	old, loaded := w.st, w.loaded
	w.st, w.loaded = st, true
	if u := w.undo; u != nil && st.Cart != nil {
		// Gone, then back (undone here, or added again elsewhere): no
		// more to undo. A state from before the removal went through
		// still has the line, and changes nothing.
		if st.Cart.Line(u.key) == nil {
			u.gone = true
		} else if u.gone {
			w.undo = nil
		}
	}
	if loaded {
		w.sayChange(old, st) // names lines as the new state shows them
	}
	if w.confirm != "" && (st.Cart == nil || st.Cart.Line(w.confirm) == nil) {
		w.confirm = ""
	}
}

// update takes a new engine state and draws the shopper's attention to
// what a login brought: a choice between two carts opens the panel on it,
// and a merge that changed the cart opens it on the review step, so that
// the shopper sees the cart before checkout.
func (w *Widget) update(ctx app.Context, st syncclient.State) {
	asked := w.open && w.st.Choice != nil // the panel shows a choice
	w.show(st)
	defer w.reloadIfIdle(ctx)
	switch {
	case st.Choice != nil && st.Choice != w.seenChoice:
		w.seenChoice = st.Choice
		w.confirm = ""
		if asked && (w.c == nil || w.c.focusIn(choiceID)) {
			// The same question again (the server asks anew after
			// a reconnect): the focus stays where the shopper is, in
			// the choice. Lost (to the frame's body), it goes back.
			return
		}
		w.setOpen(ctx, true)
		w.focusLater(ctx, choiceID)
	case mergeShown(st) && st.Merge != w.seenMerge && st.Choice == nil:
		// A merge done (a choice asked is the case above).
		w.seenMerge = st.Merge
		w.dropNote(tr(noteChoiceNotSent)) // sent after all
		if texts := mergeTexts(st.Merge, st.MergeLate); len(texts) > 0 {
			w.say(strings.Join(texts, " "))
		}
		if asked && st.Merge.Status == protocol.MergeAlready {
			// The pick changed nothing now: another tab or device
			// had settled the carts meanwhile, or this pick was
			// applied before the connection dropped, or the device's
			// cart was gone. Said, not dropped, without guessing which.
			w.addNote(tr(noteChoiceAlready))
		}
		if !mergeChanged(st.Merge) && st.MergeLate == 0 {
			if asked {
				w.focusLater(ctx, titleID) // the choice's buttons are gone
			}
			return
		}
		w.startReview()
		if w.open {
			w.focusLater(ctx, titleID)
		}
		w.setOpen(ctx, true)
	}
}

// mergeShown reports whether st has a login merge and the cart shown
// includes it (the server tells the merge before it sends the cart), and
// the adds this device had not sent at the login are answered (their
// count is told with the merge).
func mergeShown(st syncclient.State) bool {
	return st.Merge != nil && st.User != "" && st.Confirmed >= st.Merge.Version && !st.MergeSettling
}

// mergeNotice returns the merge to tell the shopper about, or nil.
func (w *Widget) mergeNotice() *protocol.MergeInfo {
	if !mergeShown(w.st) || w.st.Merge == w.hiddenMerge || w.st.Choice != nil {
		return nil
	}
	if len(mergeTexts(w.st.Merge, w.st.MergeLate)) == 0 {
		return nil
	}
	return w.st.Merge
}

// hasNotice reports whether the panel shows the notice about a merge, an
// expired cart or lost edits.
func (w *Widget) hasNotice() bool {
	return w.mergeNotice() != nil || w.st.CartExpired || len(w.st.Dropped) > 0 || w.st.Elsewhere != nil
}

// hasMessage reports whether the panel has something for the shopper to
// read: a notice, an edit refused or reduced, a note (signed out, a limit
// met), lines the catalog changed, a sign-in needed, sync stopped.
func (w *Widget) hasMessage() bool {
	return w.loaded && (w.hasNotice() || w.st.NeedsLogin || w.stopped != nil || len(w.st.Notices) > 0 || len(w.notes) > 0 || len(w.undismissed()) > 0)
}

// items is the number of items in the cart.
func (w *Widget) items() int {
	if w.st.Cart == nil {
		return 0
	}
	return w.st.Cart.Items()
}

// line returns the shown line with key, or nil.
func (w *Widget) line(key string) *cart.Line {
	if w.st.Cart == nil {
		return nil
	}
	return w.st.Cart.Line(key)
}

// OnAppUpdate reloads at once into a new version when nothing would be
// disturbed, and otherwise offers to, and reloads by itself as soon as
// nothing would be (the edits sent, the panel closed). Pending edits would
// survive a reload anyway: they are in IndexedDB.
func (w *Widget) OnAppUpdate(ctx app.Context) {
	w.updateReady = true
	w.reloadIfIdle(ctx)
}

// reloadIfIdle moves to a new version that is waiting, if the shopper is
// not in the middle of anything.
func (w *Widget) reloadIfIdle(ctx app.Context) {
	if w.updateReady && unsent(w.st) == 0 && !w.open && w.st.Choice == nil {
		w.updateReady = false
		ctx.Reload()
	}
}

// setOpen opens or closes the panel, moving the focus into it or back to
// the cart button.
func (w *Widget) setOpen(ctx app.Context, open bool) {
	if w.open == open {
		return
	}
	w.open = open
	if !open {
		w.review, w.confirm, w.checkoutNote, w.undo, w.refocus = false, "", "", nil, nil
	}
	if w.c != nil {
		w.c.open.Store(open)
	}
	if open {
		w.focusLater(ctx, panelID)
	} else {
		w.focusLater(ctx, buttonID)
	}
	w.later(ctx, func(ctx app.Context) {
		if w.c != nil {
			w.c.measure(w.open)
		}
	})
}

// later runs f once the current update is rendered. It defers on the
// widget's own context when there is one: go-app drops a function deferred
// on an event's context when the element the event came from is rendered
// away, as the close button and Review are by the update they start.
func (w *Widget) later(ctx app.Context, f func(app.Context)) {
	if w.c != nil {
		ctx = w.c.ctx
	}
	ctx.Defer(f)
}

// afterRender keeps the focus in the panel when the element that had it was
// re-rendered away, and reports the widget's size.
func (w *Widget) afterRender(ctx app.Context) {
	w.later(ctx, func(ctx app.Context) {
		if w.c == nil {
			return
		}
		if f := w.refocus; f != nil && f.ready() {
			w.refocus = nil
			if !w.c.focus(f.id) { // the review step has no Remove buttons
				w.c.focus(titleID)
			}
		}
		if w.open {
			w.c.keepFocusInPanel()
		}
		w.c.measure(w.open)
	})
}

// UI event handlers. They run on the UI goroutine.

func (w *Widget) onToggle(ctx app.Context, e app.Event) { w.setOpen(ctx, !w.open) }

func (w *Widget) onClose(ctx app.Context, e app.Event) { w.setOpen(ctx, false) }

func (w *Widget) onReview(ctx app.Context, e app.Event) {
	w.startReview()
	w.focusLater(ctx, titleID)
	w.afterRender(ctx)
}

func (w *Widget) onReload(ctx app.Context, e app.Event) { ctx.Reload() }

func (w *Widget) onDismiss(ctx app.Context, e app.Event) {
	w.dismiss()
	w.focusLater(ctx, titleID)
	w.afterRender(ctx)
}

// dismiss hides the messages shown.
func (w *Widget) dismiss() {
	if w.dismissed == nil {
		w.dismissed = make(map[protocol.OpID]bool)
	}
	for _, r := range w.results() {
		w.dismissed[protocol.OpID{Client: r.Client, Seq: r.Seq}] = true
	}
	w.notes = nil
}

// onAckNotices hides the notice about a merge, an expired cart or lost
// edits, and tells the engine it was seen.
func (w *Widget) onAckNotices(ctx app.Context, e app.Event) {
	w.hiddenMerge = w.st.Merge
	if w.c != nil {
		w.c.ackNotices()
	}
	w.focusLater(ctx, titleID)
	w.afterRender(ctx)
}

// onChoose returns the handler of a button of the login choice.
func (w *Widget) onChoose(policy cart.Policy) app.EventHandler {
	return func(ctx app.Context, e app.Event) {
		if w.st.Choice == nil || w.choosing != "" {
			return
		}
		w.choosing = policy
		if w.c != nil {
			w.c.choose(policy)
		}
		w.afterRender(ctx)
	}
}

// lineHandler returns a handler for the line with key. Handlers capture the
// key only: go-app keeps the first handler of an element while its scope
// (the key, see view.go) stays the same.
func (w *Widget) lineHandler(key string, f func(ctx app.Context, l *cart.Line)) app.EventHandler {
	return func(ctx app.Context, e app.Event) {
		if l := w.line(key); l != nil {
			f(ctx, l)
		}
	}
}

func (w *Widget) onIncrease(ctx app.Context, l *cart.Line) {
	if w.c != nil {
		w.c.step(l.Key, +1)
	}
}

func (w *Widget) onDecrease(ctx app.Context, l *cart.Line) {
	if l.Quantity <= 1 {
		w.askRemove(ctx, l)
		return
	}
	if w.c != nil {
		w.c.step(l.Key, -1)
	}
}

func (w *Widget) askRemove(ctx app.Context, l *cart.Line) {
	w.confirm = l.Key
	w.focusLater(ctx, keepID)
	w.afterRender(ctx)
}

// onRemove removes the line, offers to undo it, and moves the focus to the
// next line (live.go).
func (w *Widget) onRemove(ctx app.Context, l *cart.Line) {
	w.confirm = ""
	key := l.Key
	// Once the line is gone: the panel's list is patched in place, and
	// the next line's button is not the same element before and after.
	w.refocus = &pendingFocus{id: w.focusAfterRemove(key), ready: func() bool { return w.line(key) == nil }}
	w.offerUndo(ctx, l)
	if w.c != nil {
		w.c.remove(key)
	}
	w.afterRender(ctx)
}

// onKeep answers the question whether to remove a line: the focus goes back
// to the Decrease button that asked it.
func (w *Widget) onKeep(ctx app.Context, l *cart.Line) {
	w.confirm = ""
	w.focusLater(ctx, lineControlID("decrease", l.Key))
	w.afterRender(ctx)
}

// focusLater focuses the element with id after the next render; the last
// asked for wins.
func (w *Widget) focusLater(ctx app.Context, id string) {
	w.focusNext, w.focusAsked = id, id
	w.later(ctx, func(ctx app.Context) {
		if w.c != nil && w.focusNext != "" {
			w.c.focus(w.focusNext)
		}
		w.focusNext = ""
	})
}

// addNote shows a local message and announces it.
func (w *Widget) addNote(s string) {
	w.say(s)
	if n := len(w.notes); n > 0 && w.notes[n-1] == s {
		return // said again, shown once
	}
	w.notes = append(w.notes, s)
	if n := len(w.notes) - maxMessages; n > 0 {
		w.notes = append([]string(nil), w.notes[n:]...)
	}
}

// dropNote takes back a local message that no longer holds.
func (w *Widget) dropNote(s string) {
	w.notes = slices.DeleteFunc(w.notes, func(n string) bool { return n == s })
}

// undismissed are the server's answers told (results) that the shopper
// has not dismissed.
func (w *Widget) undismissed() []protocol.Result {
	var out []protocol.Result
	for _, r := range w.results() {
		if !w.dismissed[protocol.OpID{Client: r.Client, Seq: r.Seq}] {
			out = append(out, r)
		}
	}
	return out
}

// messages are the refused edits not dismissed and the local notes, most
// recent last, at most maxMessages.
func (w *Widget) messages() []string {
	var out []string
	for _, r := range w.undismissed() {
		out = append(out, w.resultText(r))
	}
	out = append(out, w.notes...)
	if n := len(out) - maxMessages; n > 0 {
		out = out[n:]
	}
	return out
}

// results are the server's answers the shopper is told about (answers).
func (w *Widget) results() []protocol.Result { return answers(w.st) }

// answers are the server's answers in st the shopper is told about, the
// refused edits and those applied reduced, in the order the server gave
// them: by the cart's version, and an edit applied at a version before one
// refused at it (a refusal carries the version it left unchanged).
func answers(st syncclient.State) []protocol.Result {
	out := append(slices.Clip(st.Rejected), st.Reduced...)
	refused := func(r protocol.Result) int {
		if r.Status == protocol.StatusRejected {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(out, func(a, b protocol.Result) int {
		return cmp.Or(cmp.Compare(a.Version, b.Version), refused(a)-refused(b))
	})
	return out
}

// resultText tells the shopper about a refused edit or a warning.
func (w *Widget) resultText(r protocol.Result) string {
	name := ""
	var ref opRef
	var known bool
	if w.ops != nil {
		ref, known = w.ops.lookup(protocol.OpID{Client: r.Client, Seq: r.Seq})
	}
	if known {
		// The line's name, as the panel shows it (the catalog's, with
		// one), else the one the edit carried.
		switch l := w.line(ref.key); {
		case l != nil:
			name = lineName(l)
		case ref.name != "":
			name = ref.name
		default:
			name = ref.sku
		}
	}
	if r.Error != nil {
		return errorText(name, r.Error)
	}
	for _, wn := range r.Warnings {
		switch {
		case wn.Code == cart.CodeStockClamped:
			return reducedText(name, wn)
		case wn.Code == cart.CodeQuantityClamped && name != "":
			return tr("edit.limited", "name", name)
		}
	}
	return rejectedText(name, "")
}
