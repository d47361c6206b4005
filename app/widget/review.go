package widget

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// The review step and the checkout from the panel, and what a logout
// takes down with them.

// loggedOut takes a logout (here or in another tab) from the state before
// it: the merge notice, the notes about the account's lines and its review
// are not the next person's; a signed-out note says where the cart went.
func (w *Widget) loggedOut(before syncclient.State) {
	w.hiddenMerge = before.Merge
	w.notes = nil
	if !w.checkingOut {
		w.endReview()
	}
	if before.User != "" {
		w.addNote(tr(noteSignedOut))
	}
}

// endReview leaves the review step.
func (w *Widget) endReview() {
	w.review, w.confirm, w.checkoutNote, w.reviewed = false, "", "", nil
}

// startReview shows the review step on the cart shown now.
func (w *Widget) startReview() {
	w.review, w.confirm, w.checkoutNote = true, "", ""
	w.reviewed = w.st.Cart
}

func (w *Widget) onBack(ctx app.Context, e app.Event) {
	w.review, w.checkoutNote = false, ""
	w.focusLater(ctx, titleID)
	w.afterRender(ctx)
}

// onCheckout hands over the cart the review step showed.
func (w *Widget) onCheckout(ctx app.Context, e app.Event) {
	w.startCheckout(ctx, w.reviewed)
}

// onDirectCheckout hands over the cart the panel shows, without the review
// step (the direct checkout mode). If the server refuses it because the
// cart moved, the review step shows the cart as it is then (checkedOut).
func (w *Widget) onDirectCheckout(ctx app.Context, e app.Event) {
	w.startCheckout(ctx, w.st.Cart)
}

// startCheckout asks the client to check out cart c, the one the shopper
// saw, unless a checkout is under way, the cart is empty or a notice
// stands.
func (w *Widget) startCheckout(ctx app.Context, c *cart.Cart) {
	if w.checkingOut || w.items() == 0 || len(w.st.Notices) > 0 {
		return
	}
	w.reviewed = c
	w.checkingOut, w.checkoutNote = true, ""
	if w.c != nil {
		w.c.checkout(c)
	}
	w.afterRender(ctx)
}

// checkedOut takes the outcome of a checkout: again, when the review step
// must be shown again (the cart or the catalog moved), says why; note is
// what else the shopper should know ("" for nothing); both are message ids.
func (w *Widget) checkedOut(ctx app.Context, again, note string) {
	w.checkingOut = false
	switch {
	case again != "" && w.items() == 0:
		w.endReview() // emptied meanwhile: nothing to review
	case again != "":
		w.startReview()
		w.checkoutNote = again
		w.focusLater(ctx, titleID)
	default:
		w.checkoutNote = note
	}
}
