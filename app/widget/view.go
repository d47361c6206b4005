package widget

import (
	"strconv"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
)

// Element ids the client looks up (focus, size).
const (
	rootID    = "cartsync-root"
	buttonID  = "cartsync-button"
	panelID   = "cartsync-panel"
	titleID   = "cartsync-title"
	keepID    = "cartsync-keep"
	choiceID  = "cartsync-choice"
	blockedID = "cartsync-checkout-blocked"
	liveID    = "cartsync-live"
	undoID    = "cartsync-undo"
	directID  = "cartsync-checkout-direct"
)

// Render draws the cart button, the live region (live.go) and, when open,
// the panel, always in this order: the live region's element stays the
// same while the panel opens and closes.
func (w *Widget) Render() app.UI {
	root := app.Div().ID(rootID).Class("cartsync").Lang(active.tag).Dir(active.dir())
	if w.blocked {
		return root.Body(app.P().Class("cartsync-blocked").Text(tr("widget.blocked")))
	}
	children := []app.UI{w.renderButton(), w.renderLive()}
	if w.open {
		root = root.Class("cartsync--open")
		children = append(children, w.renderPanel())
	}
	return root.Body(children...)
}

// renderButton draws the cart button: an icon and the item count, and,
// while the panel is closed, a dot when the panel has something to tell
// (hasMessage), also in the button's name.
func (w *Widget) renderButton() app.UI {
	items := w.items()
	label := cartLabel(w.loaded, items)
	hint := !w.open && w.hasMessage()
	if hint {
		label = tr("cart.label.message", "label", label)
	}
	b := app.Button().
		ID(buttonID).
		Class("cartsync-button").
		Type("button").
		Aria("label", label).
		Aria("haspopup", "dialog").
		Aria("expanded", strconv.FormatBool(w.open)).
		OnClick(w.onToggle)
	if w.open {
		b = b.Aria("controls", panelID)
	}
	children := []app.UI{app.Span().Class("cartsync-icon").Aria("hidden", "true")}
	if w.loaded && items > 0 {
		children = append(children, app.Span().Class("cartsync-badge").Aria("hidden", "true").Text(badgeText(items)))
	}
	if hint {
		children = append(children, app.Span().Class("cartsync-dot").Aria("hidden", "true"))
	}
	return b.Body(children...)
}

// renderPanel draws the dialog: head, status, notices, body, foot, always
// in this order (the tests address them by index).
func (w *Widget) renderPanel() app.UI {
	title := tr("panel.title")
	choice := w.loaded && w.st.Choice != nil
	switch {
	case choice:
		title = tr("panel.title.choice")
	case w.review:
		title = tr("panel.title.review")
	}
	var body, foot app.UI
	switch {
	case choice:
		body = w.renderChoice()
		foot = w.foot()
	case !w.loaded:
		body = app.P().Class("cartsync-empty").Text(tr("panel.loading"))
		foot = w.foot()
	case w.items() == 0:
		body = app.P().Class("cartsync-empty").Text(tr("panel.empty"))
		foot = w.foot()
	case w.review:
		body, foot = w.renderReview(), w.renderReviewFoot()
	default:
		body, foot = w.renderLines(), w.renderCartFoot()
	}
	return app.Div().
		ID(panelID).
		Class("cartsync-panel").
		Role("dialog").
		Aria("modal", "true").
		Aria("labelledby", titleID).
		TabIndex(-1).
		Body(
			app.Div().Class("cartsync-head").Body(
				app.H2().ID(titleID).Class("cartsync-title").TabIndex(-1).Text(title),
				app.Button().
					Class("cartsync-close").
					Type("button").
					Aria("label", tr("panel.close")).
					OnClick(w.onClose).
					Body(app.Span().Aria("hidden", "true").Text("×")),
			),
			app.P().Class("cartsync-status").Text(statusText(w.loaded, w.st)),
			w.renderNotices(),
			body,
			foot,
		)
}

// foot draws the panel's foot, which stays on screen while the lines
// scroll: Undo of a removal first, so that it is in view wherever the
// removed line was, then children.
func (w *Widget) foot(children ...app.UI) app.UI {
	if u := w.renderUndo(); u != nil {
		children = append([]app.UI{u}, children...)
	}
	return app.Div().Class("cartsync-foot").Body(children...)
}

// renderNotices draws what the shopper should know besides the cart: where
// it is kept, a stopped sync, an update, refused edits.
// None of it is live: the live region says what matters (live.go).
func (w *Widget) renderNotices() app.UI {
	var children []app.UI
	if w.storageNote != "" {
		children = append(children, app.P().Class("cartsync-note").Text(tr(w.storageNote)))
	}
	if w.stopped != nil {
		children = append(children, app.P().Class("cartsync-note cartsync-note--warn").Text(stoppedText(w.stopped)))
	}
	if w.updateReady {
		children = append(children, app.Button().
			Class("cartsync-update").
			Type("button").
			OnClick(w.onReload).
			Text(tr("panel.update")))
	}
	if msgs := w.messages(); len(msgs) > 0 {
		list := make([]app.UI, 0, len(msgs)+1)
		for _, m := range msgs {
			list = append(list, app.P().Class("cartsync-message").Text(m))
		}
		list = append(list, app.Button().
			Class("cartsync-dismiss").
			Type("button").
			Aria("label", tr("messages.dismiss.label")).
			OnClick(w.onDismiss).
			Text(tr("messages.dismiss")))
		children = append(children, app.Div().Class("cartsync-messages").Body(list...))
	}
	if w.hasNotice() {
		children = append(children, w.renderNotice())
	}
	if n := len(w.st.Notices); n > 0 && w.loaded && w.st.Choice == nil {
		// For screen readers reading the panel; the lines show it.
		children = append(children, app.P().Class("cartsync-sr").Text(noticesSummary(n)))
	}
	return app.Div().Class("cartsync-notices").Body(children...)
}

// renderNotice tells what happened to the cart without the shopper doing
// it: an expired cart replaced by a new one, edits lost with it, what a
// login merge did. One button acknowledges them all (the engine clears
// them together).
func (w *Widget) renderNotice() app.UI {
	var children []app.UI
	if w.st.CartExpired {
		children = append(children, app.P().Class("cartsync-expired").Text(tr(handoverText(w.st))))
	}
	if len(w.st.Dropped) > 0 {
		intro := tr("dropped.intro.expired")
		if !w.st.CartExpired {
			intro = tr("dropped.intro")
		}
		items := make([]app.UI, len(w.st.Dropped))
		for i, op := range w.st.Dropped {
			items[i] = app.Li().Text(droppedText(op, w.ops))
		}
		children = append(children,
			app.P().Class("cartsync-dropped-intro").Text(intro),
			app.Ul().Class("cartsync-dropped").Body(items...))
	}
	if mi := w.mergeNotice(); mi != nil {
		for _, t := range mergeTexts(mi, w.st.MergeLate) {
			children = append(children, app.P().Class("cartsync-merge").Text(t))
		}
	}
	if e := w.st.Elsewhere; e != nil {
		children = append(children, app.P().Class("cartsync-elsewhere").Text(elsewhereText(e)))
	}
	children = append(children, app.Button().
		Class("cartsync-ack").
		Type("button").
		Aria("label", tr("notice.ack.label")).
		OnClick(w.onAckNotices).
		Text(tr("notice.ack")))
	return app.Div().Class("cartsync-notice").Body(children...)
}

// renderChoice shows the two carts of a login with the policy choose side
// by side, and the three ways to go on. Nothing changes until the shopper
// picks one.
func (w *Widget) renderChoice() app.UI {
	ch := w.st.Choice
	busy := w.choosing != ""
	button := func(policy cart.Policy, class, label, hint string) app.UI {
		b := app.Button().
			Class("cartsync-choose "+class).
			Type("button").
			DataSet("policy", string(policy)).
			Aria("describedby", "cartsync-choose-"+string(policy)).
			OnClick(w.onChoose(policy))
		if busy {
			b = b.Disabled(true)
			if w.choosing == policy {
				b = b.Aria("busy", "true")
			}
		}
		return app.Div().Class("cartsync-choose-option").Body(
			b.Text(label),
			app.P().ID("cartsync-choose-"+string(policy)).Class("cartsync-choose-hint").Text(hint),
		)
	}
	status := tr("choice.waiting")
	if busy {
		status = tr("choice.applying")
	}
	return app.Section().
		ID(choiceID).
		Class("cartsync-choice").
		Role("region").
		Aria("labelledby", "cartsync-choice-title").
		TabIndex(-1).
		Body(
			app.H3().ID("cartsync-choice-title").Class("cartsync-choice-title").Text(tr("choice.heading")),
			app.P().Class("cartsync-choice-intro").Text(tr("choice.intro")+" "+status),
			app.Div().Class("cartsync-carts").Body(
				w.renderChoiceCart("cartsync-choice-guest", tr("choice.guest"), ch.Guest),
				w.renderChoiceCart("cartsync-choice-user", tr("choice.user"), ch.User),
			),
			app.Div().Class("cartsync-choose-options").Role("group").Aria("label", tr("choice.options")).Body(
				button(cart.PolicyMerge, "cartsync-primary", tr("choice.merge"), tr("choice.merge.hint")),
				button(cart.PolicyReplace, "cartsync-secondary", tr("choice.replace"), tr("choice.replace.hint")),
				button(cart.PolicyKeep, "cartsync-secondary", tr("choice.keep"), tr("choice.keep.hint")),
			),
		)
}

// renderChoiceCart draws one of the carts to choose from: its lines and
// totals.
func (w *Widget) renderChoiceCart(id, title string, c *cart.Cart) app.UI {
	children := []app.UI{app.H4().ID(id + "-title").Class("cartsync-choice-name").Text(title)}
	if c == nil || len(c.Lines) == 0 {
		children = append(children, app.P().Class("cartsync-choice-empty").Text(tr("choice.empty")))
	} else {
		lines := make([]app.UI, len(c.Lines))
		for i, l := range c.Lines {
			lines[i] = w.renderSummaryLine(l, nil)
		}
		children = append(children,
			app.P().Class("cartsync-choice-count").Text(trn("cart.items", c.Items())),
			app.Ul().Class("cartsync-review").Body(lines...))
		if sums := subtotals(c); len(sums) > 0 {
			children = append(children, app.P().Class("cartsync-choice-total").Text(tr("choice.total", "amount", strings.Join(sums, " + "))))
		}
	}
	return app.Section().
		ID(id).
		Class("cartsync-choice-cart").
		Aria("labelledby", id+"-title").
		Body(children...)
}

// renderLines draws the cart's lines.
func (w *Widget) renderLines() app.UI {
	lines := w.st.Cart.Lines
	items := make([]app.UI, len(lines))
	for i, l := range lines {
		items[i] = w.renderLine(l)
	}
	return app.Ul().Class("cartsync-lines").Aria("label", tr("lines.label")).Body(items...)
}

// renderLine draws one line: picture, name, price, options, quantity
// stepper and remove button, and the removal question when asked.
func (w *Widget) renderLine(l *cart.Line) app.UI {
	name := lineName(l)
	scope := app.EventScope(l.Key)

	// The picture repeats the name beside it: empty alt text, so that
	// screen readers say the name once, and a picture that cannot load
	// (offline, from the storefront's site) leaves the grey box instead of
	// a broken-image icon with the name cut off in it.
	thumb := app.Div().Class("cartsync-thumb").Aria("hidden", "true")
	if src := imageURL(l.Details.Image, w.host); src != "" {
		thumb = thumb.Body(app.Img().Src(src).Alt("").Loading("lazy").Width(56).Height(56))
	}

	info := []app.UI{app.P().Class("cartsync-name").Text(name)}
	if l.Details.Price > 0 {
		info = append(info, app.P().Class("cartsync-price").Text(formatPrice(l.Details.Price, l.Details.Currency)))
	}
	if len(l.Options) > 0 {
		info = append(info, app.P().Class("cartsync-options").Text(optionsText(l.Options)))
	}
	if total := w.lineTotal(l); total != "" {
		info = append(info, app.P().Class("cartsync-line-total").Body(
			app.Span().Class("cartsync-sr").Text(tr("line.total")+" "),
			app.Text(total),
		))
	}

	children := []app.UI{
		thumb,
		app.Div().Class("cartsync-info").Body(info...),
		app.Div().Class("cartsync-stepper").Role("group").Aria("label", tr("line.quantity", "name", name)).Body(
			app.Button().
				ID(lineControlID("decrease", l.Key)).
				Class("cartsync-step").
				Type("button").
				Aria("label", tr("line.decrease", "name", name)).
				OnClick(w.lineHandler(l.Key, w.onDecrease), scope).
				Text("−"),
			app.Span().Class("cartsync-qty").Text(strconv.Itoa(l.Quantity)),
			app.Button().
				Class("cartsync-step").
				Type("button").
				Aria("label", tr("line.increase", "name", name)).
				OnClick(w.lineHandler(l.Key, w.onIncrease), scope).
				Text("+"),
		),
		app.Button().
			ID(lineControlID("remove", l.Key)).
			Class("cartsync-remove").
			Type("button").
			Aria("label", tr("line.remove.label", "name", name)).
			OnClick(w.lineHandler(l.Key, w.onRemove), scope).
			Text(tr("line.remove")),
	}
	if w.confirm == l.Key {
		children = append(children, app.Div().Class("cartsync-confirm").Role("group").Aria("label", tr("line.confirm.label", "name", name)).Body(
			app.P().Text(tr("line.confirm", "name", name)),
			app.Button().
				Class("cartsync-confirm-remove").
				Type("button").
				OnClick(w.lineHandler(l.Key, w.onRemove), scope).
				Text(tr("line.confirm.remove")),
			app.Button().
				ID(keepID).
				Class("cartsync-confirm-keep").
				Type("button").
				OnClick(w.lineHandler(l.Key, w.onKeep), scope).
				Text(tr("line.confirm.keep")),
		))
	}
	if n := w.renderLineNotice(l); n != nil {
		children = append(children, n)
	}
	return app.Li().Class("cartsync-line").Body(children...)
}

// lineTotal is a line's quantity times its unit price, at the catalog's
// price when a notice says it changed; "" without a price.
func (w *Widget) lineTotal(l *cart.Line) string {
	unit, currency := l.Details.Price, l.Details.Currency
	if n := w.notice(l.Key); n != nil && n.PriceChanged != nil {
		unit, currency = n.PriceChanged.To, n.PriceChanged.Currency
	}
	if unit <= 0 {
		return ""
	}
	return formatPrice(unit*int64(l.Quantity), currency)
}

// renderSubtotal draws the subtotal per currency and the note that taxes
// and shipping come at checkout, or nothing if no line has a price.
func (w *Widget) renderSubtotal() []app.UI {
	sums := subtotalsOf(w.st.Cart, w.st.Totals)
	if len(sums) == 0 {
		return nil
	}
	children := []app.UI{app.Span().Class("cartsync-subtotal-label").Text(tr("subtotal"))}
	for _, s := range sums {
		children = append(children, app.Span().Class("cartsync-subtotal-amount").Text(s))
	}
	return []app.UI{
		app.P().Class("cartsync-subtotal").Body(children...),
		app.P().Class("cartsync-tax-note").Text(tr(noteTaxes)),
	}
}

// renderCartFoot draws the subtotal and Review order; with the direct
// checkout mode (theme checkout), Checkout next to it, which hands over the
// cart shown, and what the review step's foot tells about checkout.
func (w *Widget) renderCartFoot() app.UI {
	children := w.renderSubtotal()
	review := app.Button().Type("button").OnClick(w.onReview).Text(tr("review"))
	if w.checkoutMode != checkoutDirect {
		children = append(children, review.Class("cartsync-primary"))
		return w.foot(children...)
	}
	children = append(children, w.checkoutNotes()...)
	children = append(children, app.Div().Class("cartsync-actions").Body(
		review.Class("cartsync-secondary"),
		w.checkoutButton().ID(directID).OnClick(w.onDirectCheckout),
	))
	return w.foot(children...)
}

// checkoutNotes are what the foot tells about checkout: why it could not
// start, or why it is off (a notice stands).
func (w *Widget) checkoutNotes() []app.UI {
	var out []app.UI
	if w.checkoutNote != "" {
		out = append(out, app.P().Class("cartsync-checkout-note").Role("alert").Text(tr(w.checkoutNote)))
	}
	if !w.checkingOut && len(w.st.Notices) > 0 {
		out = append(out, app.P().ID(blockedID).Class("cartsync-checkout-blocked").Text(tr(checkoutBlocked)))
	}
	return out
}

// checkoutButton is Checkout: busy while the cart is handed over, off while
// a notice stands (described by checkoutNotes' blockedID).
func (w *Widget) checkoutButton() app.HTMLButton {
	b := app.Button().Class("cartsync-primary").Type("button")
	switch {
	case w.checkingOut:
		return b.Disabled(true).Aria("busy", "true").Text(tr("checkout.saving"))
	case len(w.st.Notices) > 0:
		return b.Disabled(true).Aria("describedby", blockedID).Text(tr("checkout"))
	}
	return b.Text(tr("checkout"))
}

// renderReview draws the review step's summary: "2 × T-shirt" and the line
// total.
func (w *Widget) renderReview() app.UI {
	lines := w.st.Cart.Lines
	items := make([]app.UI, len(lines))
	for i, l := range lines {
		items[i] = w.renderSummaryLine(l, w.notice(l.Key))
	}
	return app.Ul().Class("cartsync-review").Aria("label", tr("review.label")).Body(items...)
}

// renderSummaryLine draws a line as "2 × T-shirt (size: M)" and its total.
// With a notice of the catalog (the review step), the total is the one the
// subtotal counts: at the new price, after the old one struck out; struck
// out for a withdrawn item. The notice and its fixes follow.
func (w *Widget) renderSummaryLine(l *cart.Line, n *cart.Notice) app.UI {
	what := tr("review.line", "count", l.Quantity, "name", lineName(l))
	if len(l.Options) > 0 {
		what = tr("review.line.options", "count", l.Quantity, "name", lineName(l), "options", optionsText(l.Options))
	}
	total := ""
	if l.Details.Price > 0 {
		total = formatPrice(l.Details.Price*int64(l.Quantity), l.Details.Currency)
	}
	amount := app.Span().Class("cartsync-review-total")
	switch {
	case n != nil && n.Unavailable && total != "":
		amount = amount.Body(app.Del().Text(total))
	case n != nil && n.PriceChanged != nil:
		now := formatPrice(n.PriceChanged.To*int64(l.Quantity), n.PriceChanged.Currency)
		if total == "" {
			amount = amount.Text(now)
		} else {
			amount = amount.Body(app.Del().Text(total), app.Text(" "+now))
		}
	default:
		amount = amount.Text(total)
	}
	children := []app.UI{app.Span().Class("cartsync-review-what").Text(what), amount}
	if n != nil {
		children = append(children, w.renderLineNotice(l))
	}
	return app.Li().Class("cartsync-review-line").Body(children...)
}

// renderReviewFoot draws the subtotal, why checkout cannot go on (a notice
// stands, the cart moved, the network), and the buttons.
func (w *Widget) renderReviewFoot() app.UI {
	children := append(w.renderSubtotal(), w.checkoutNotes()...)
	children = append(children, app.Div().Class("cartsync-actions").Body(
		app.Button().
			Class("cartsync-secondary").
			Type("button").
			OnClick(w.onBack).
			Text(tr("review.back")),
		w.checkoutButton().OnClick(w.onCheckout),
	))
	return w.foot(children...)
}

// imageURL returns where to load a line's picture from: http(s) URLs as
// they are, and absolute paths on the storefront's origin (the widget runs
// on the cart server's). "" for no picture.
func imageURL(img, host string) string {
	switch {
	case strings.HasPrefix(img, "https://"), strings.HasPrefix(img, "http://"):
		return img
	case strings.HasPrefix(img, "/") && !strings.HasPrefix(img, "//") && host != "":
		return host + img
	}
	return ""
}
