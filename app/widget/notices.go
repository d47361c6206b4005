package widget

import (
	"context"
	"fmt"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
)

// The storefront's catalog in the panel: what changed under a line since it
// was added (the engine's State.Notices) told in plain words, each with the
// edit that settles it; and what the review step checks before it hands
// the cart over.

// Ids of the texts about the checkout handoff.
const (
	// checkoutBlocked says why Checkout is off while a notice stands.
	checkoutBlocked = "checkout.blocked"
	// reviewChanged and reviewNotices ask the shopper to review again
	// instead of handing over a cart they have not seen.
	reviewChanged   = "checkout.changed"
	reviewNotices   = "checkout.notices"
	reviewEmpty     = "checkout.empty"
	checkoutOffline = "checkout.offline"
	checkoutFailed  = "checkout.failed"
	checkoutSignIn  = "checkout.signin"
)

// noticesSummary tells screen readers that n lines have a notice.
func noticesSummary(n int) string {
	return trn("notices.summary", n)
}

// notice returns the notice about the line with key, or nil.
func (w *Widget) notice(key string) *cart.Notice {
	for i := range w.st.Notices {
		if w.st.Notices[i].Line == key {
			return &w.st.Notices[i]
		}
	}
	return nil
}

// priceChangedText tells a new unit price: "Price changed from €12.00 to
// €14.00".
func priceChangedText(pc *cart.PriceChange) string {
	from := pc.FromCurrency
	if from == "" {
		from = pc.Currency
	}
	return tr("line.price_changed", "from", formatPrice(pc.From, from), "to", formatPrice(pc.To, pc.Currency))
}

// availableText tells how many of an item the cart may hold, and whether
// that is the catalog's maximum per order (by, cart.LimitPerOrder) or its
// stock.
func availableText(n int, by string) string {
	switch {
	case n <= 0:
		return tr("line.out_of_stock")
	case by == cart.LimitPerOrder:
		return tr("line.per_order", "count", n)
	}
	return trn("line.available", n)
}

// reduceTarget is the quantity line l must come down to so that the cart
// holds no more of its SKU, over all its option lines, than available: 0
// when its other lines take it all.
func reduceTarget(c *cart.Cart, l *cart.Line, available int) int {
	return max(0, available-(c.SKUQuantity(l.SKU)-l.Quantity))
}

// renderLineNotice draws what changed under line l, one row per change, each
// with its fix, or nil when nothing did. On the panel and on the review
// step alike.
func (w *Widget) renderLineNotice(l *cart.Line) app.UI {
	n := w.notice(l.Key)
	if n == nil {
		return nil
	}
	name := lineName(l)
	scope := app.EventScope(l.Key)
	row := func(kind, text string, fix app.HTMLButton) app.UI {
		return app.Div().Class("cartsync-fix-row").DataSet("notice", kind).Body(
			app.P().Class("cartsync-fix-text").Text(text),
			fix.Class("cartsync-fix").Type("button"),
		)
	}
	remove := app.Button().
		Aria("label", tr("line.remove.label", "name", name)).
		OnClick(w.lineHandler(l.Key, w.onRemove), scope).
		Text(tr("line.remove"))
	var rows []app.UI
	if n.Unavailable {
		rows = append(rows, row("unavailable", tr("line.unavailable"), remove))
	}
	if pc := n.PriceChanged; pc != nil && !n.Unavailable {
		rows = append(rows, row("price", priceChangedText(pc), app.Button().
			Aria("label", tr("line.accept_price.label", "name", name)).
			OnClick(w.lineHandler(l.Key, w.onAcceptPrice), scope).
			Text(tr("line.accept_price"))))
	}
	if n.Available != nil && !n.Unavailable {
		fix := remove
		if to := reduceTarget(w.st.Cart, l, *n.Available); to > 0 {
			fix = app.Button().
				Aria("label", tr("line.reduce.label", "name", name, "count", to)).
				OnClick(w.lineHandler(l.Key, w.onReduce), scope).
				Text(tr("line.reduce", "count", to))
		}
		rows = append(rows, row("available", availableText(*n.Available, n.LimitBy), fix))
	}
	return app.Div().Class("cartsync-line-notice").Role("group").Aria("label", tr("line.changes", "name", name)).Body(rows...)
}

func (w *Widget) onAcceptPrice(ctx app.Context, l *cart.Line) {
	key := l.Key
	w.fixed(key, func(n *cart.Notice) bool { return n.PriceChanged == nil })
	if w.c != nil {
		w.c.acceptPrice(key)
	}
	w.afterRender(ctx)
}

func (w *Widget) onReduce(ctx app.Context, l *cart.Line) {
	key := l.Key
	w.fixed(key, func(n *cart.Notice) bool { return n.Available == nil })
	if w.c != nil {
		w.c.reduce(key)
	}
	w.afterRender(ctx)
}

// fixed moves the focus, once the fix's button is gone (gone says so of
// the line's notice), to the line's Decrease button: the button had it,
// and without a place to go it would fall to the top of the panel.
func (w *Widget) fixed(key string, gone func(*cart.Notice) bool) {
	w.refocus = &pendingFocus{id: lineControlID("decrease", key), ready: func() bool {
		if w.line(key) == nil {
			return false
		}
		n := w.notice(key)
		return n == nil || gone(n)
	}}
}

// acceptPrice gives a line the catalog's price: a details op with the new
// price (the server puts the catalog's details in, whatever is sent).
func (c *client) acceptPrice(key string) {
	c.jobs.push(func(ctx context.Context) {
		eng := c.eng.Load()
		if eng == nil {
			return
		}
		st := eng.Snapshot()
		l := st.Cart.Line(key)
		var pc *cart.PriceChange
		for _, n := range st.Notices {
			if n.Line == key {
				pc = n.PriceChanged
			}
		}
		if l == nil || pc == nil {
			return // settled meanwhile
		}
		d := l.Details
		d.Price, d.Currency = pc.To, pc.Currency
		c.uiEditedSaying(lineName(l), eng.SetDetails(ctx, l.SKU, l.Options, d), tr("live.price_accepted", "name", lineName(l)))
	})
}

// reduce brings a line down so that the cart holds no more of its SKU than
// is available, as the engine's state says when the edit is made.
func (c *client) reduce(key string) {
	c.jobs.push(func(ctx context.Context) {
		eng := c.eng.Load()
		if eng == nil {
			return
		}
		st := eng.Snapshot()
		l := st.Cart.Line(key)
		var avail *int
		for _, n := range st.Notices {
			if n.Line == key {
				avail = n.Available
			}
		}
		if l == nil || avail == nil {
			return // settled meanwhile
		}
		if to := reduceTarget(st.Cart, l, *avail); to < l.Quantity {
			c.uiEditedSaying(lineName(l), eng.SetQuantity(ctx, l.SKU, l.Options, to), quantityText(lineName(l), to))
		}
	})
}

// reviewKey is what the shopper sees of a cart on the review step: each
// line's quantity and unit price.
func reviewKey(c *cart.Cart) string {
	if c == nil {
		return ""
	}
	var b strings.Builder
	for _, l := range c.Lines {
		fmt.Fprintf(&b, "%q=%d@%d%s;", l.Key, l.Quantity, l.Details.Price, l.Details.Currency)
	}
	return b.String()
}

// quantitiesKey is the lines and quantities of a cart.
func quantitiesKey(c *cart.Cart) string {
	if c == nil {
		return ""
	}
	var b strings.Builder
	for _, l := range c.Lines {
		fmt.Fprintf(&b, "%q=%d;", l.Key, l.Quantity)
	}
	return b.String()
}

// reviewAgain says why cart c, about to be checked out, is not the one the
// shopper reviewed, or "" if it is.
func reviewAgain(c *cart.Cart, notices []cart.Notice, reviewed *cart.Cart) string {
	switch {
	case c == nil || len(c.Lines) == 0:
		return reviewEmpty
	case quantitiesKey(c) != quantitiesKey(reviewed):
		return reviewChanged
	case len(notices) > 0 || reviewKey(c) != reviewKey(reviewed):
		return reviewNotices // only prices moved: the catalog's
	}
	return ""
}

// subtotalsOf returns the totals to show, formatted, in currency order: the
// server's at the catalog's prices when it sent them, else the sum of the
// lines' prices.
func subtotalsOf(c *cart.Cart, totals map[string]int64) []string {
	if totals == nil {
		return subtotals(c)
	}
	return formatTotals(totals)
}
