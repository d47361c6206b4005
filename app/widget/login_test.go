//go:build !js || !wasm

package widget

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// userState is a logged-in state: the user's cart at version 7 shown.
func userState(lines ...*cart.Line) syncclient.State {
	st := testState(syncclient.Synced, 0, lines...)
	st.User = "alice"
	return st
}

// asking returns st with the server asking the shopper to choose between
// this device's (empty) cart and the user's, a new question each call.
func asking(st syncclient.State) syncclient.State {
	st.Merge = &protocol.MergeInfo{Status: protocol.MergeChoose, Guest: &cart.Cart{}, User: st.Cart, Version: 7}
	st.Choice = st.Merge
	return st
}

func merged(policy cart.Policy, items, added, combined, replaced int, warnings ...cart.Code) *protocol.MergeInfo {
	r := &cart.MergeResult{Policy: policy, Items: items, Added: added, Combined: combined, Replaced: replaced}
	for _, c := range warnings {
		r.Warnings = append(r.Warnings, cart.Warning{Code: c, Message: string(c)})
	}
	return &protocol.MergeInfo{Status: protocol.MergeMerged, Result: r, Version: 7}
}

// html renders w and returns its HTML.
func html(t *testing.T, w *Widget) string {
	t.Helper()
	mount(t, w)
	return app.HTMLString(w)
}

func wantHTML(t *testing.T, html string, want ...string) {
	t.Helper()
	for _, s := range want {
		if !strings.Contains(html, s) {
			t.Errorf("the widget lacks %s:\n%s", s, html)
		}
	}
}

// TestMergeTextsWithLateItems: items the device had added but not sent at
// the login reach the user cart after the merge, whatever the policy, and
// count in what the shopper is told. (Before, a keep said the device's
// items were not added, and a merge counted only those sent before.)
func TestMergeTextsWithLateItems(t *testing.T) {
	for _, tt := range []struct {
		mi   *protocol.MergeInfo
		late int
		want string
	}{
		{merged(cart.PolicyKeep, 0, 0, 0, 0), 3, "Your saved cart was kept. The 3 items you had just added on this device were added to it."},
		{merged(cart.PolicyKeep, 0, 0, 0, 0), 1, "Your saved cart was kept. The item you had just added on this device was added to it."},
		{merged(cart.PolicyMerge, 1, 1, 0, 0), 3, "4 items from this device were added to your cart."},
		{merged(cart.PolicyMerge, 0, 0, 0, 0), 2, "2 items from this device were added to your cart."},
		{merged(cart.PolicyReplace, 2, 2, 0, 0), 1, "Your cart now holds the 3 items from this device."},
	} {
		if got := mergeTexts(tt.mi, tt.late); len(got) != 1 || got[0] != tt.want {
			t.Errorf("%s with %d late: %q, want %q", tt.mi.Result.Policy, tt.late, got, tt.want)
		}
	}
}

func TestMergeTexts(t *testing.T) {
	tests := []struct {
		name string
		mi   *protocol.MergeInfo
		want []string
	}{
		{"merge", merged(cart.PolicyMerge, 2, 2, 0, 0), []string{"2 items from this device were added to your cart."}},
		{"merge of one item", merged(cart.PolicyMerge, 1, 1, 0, 0), []string{"1 item from this device was added to your cart."}},
		{"merge combined", merged(cart.PolicyMerge, 3, 1, 1, 0), []string{
			"3 items from this device were added to your cart.",
			"1 product was already in your cart: the quantities were added together.",
		}},
		{"merge clamped and dropped", merged(cart.PolicyMerge, 4, 1, 2, 0, cart.CodeQuantityClamped, cart.CodeLinesDropped, cart.CodeQuantityClamped), []string{
			"4 items from this device were added to your cart.",
			"2 products were already in your cart: the quantities were added together.",
			"Some quantities were limited to the most a cart can hold.",
			"Some items couldn't be added: your cart can't hold more different items.",
		}},
		{"replace", merged(cart.PolicyReplace, 2, 2, 0, 3), []string{
			"Your cart now holds the 2 items from this device.",
			"It replaced the 3 products saved in your cart before.",
		}},
		{"keep", merged(cart.PolicyKeep, 0, 0, 0, 0), []string{"Your saved cart was kept. The items from this device were not added."}},
		{"already", &protocol.MergeInfo{Status: protocol.MergeAlready, Version: 7}, nil},
		{"choose", &protocol.MergeInfo{Status: protocol.MergeChoose, Version: 7}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mergeTexts(tt.mi, 0); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("mergeTexts =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
	if mergeChanged(merged(cart.PolicyKeep, 0, 0, 0, 0)) || !mergeChanged(merged(cart.PolicyReplace, 0, 0, 0, 2)) {
		t.Error("mergeChanged: keep changes nothing, a replace that empties the cart changes it")
	}
}

// A logout (here or in another tab) while the panel shows the review
// step ends it: the title said "Review your order" over the empty cart.
func TestLogoutEndsTheReview(t *testing.T) {
	w := &Widget{open: true}
	before := userState(testLine("MUG", "Mug", 3, 900, "EUR", nil))
	w.show(before)
	w.startReview()
	if !w.review {
		t.Fatal("startReview did not start the review")
	}
	w.show(testState(syncclient.Synced, 0))
	w.loggedOut(before)
	if w.review {
		t.Error("after the logout the review step is still shown")
	}
	got := html(t, w)
	wantHTML(t, got, `Your cart`, `Your cart is empty.`)
	if strings.Contains(got, `Review your order`) {
		t.Error("the title still says Review your order")
	}
}

// A logout drops the notes about the account's cart: the next person does
// not read that a line of the last account's was lowered to the stock.
func TestLogoutDropsTheAccountsNotes(t *testing.T) {
	w := &Widget{open: true}
	before := userState(testLine("MUG", "Mug", 3, 900, "EUR", nil))
	w.show(before)
	w.addNote("Mug: the quantity was lowered to what is available.")
	w.show(testState(syncclient.Synced, 0))
	w.loggedOut(before)
	if got := w.messages(); len(got) != 1 || got[0] != tr(noteSignedOut) {
		t.Errorf("messages after the logout %q, want only the signed-out note", got)
	}
}

// A session renewed (login again, same user) on a page that had said
// nobody was signed in, or had logged out before: until the server
// welcomes the new token the engine hides the account's cart (no user, no
// lines). That is not a logout: a review with its checkout under way
// stays, and so do the notes about the shopper's lines. (Both went.)
func TestRenewalKeepsTheReviewAndTheNotes(t *testing.T) {
	w := &Widget{open: true}
	ann := userState(testLine("MUG", "Mug", 3, 900, "EUR", nil))
	w.show(ann)
	w.addNote("Mug: the quantity was lowered to what is available.")
	w.startReview()
	w.checkingOut = true
	hidden := testState(syncclient.Connecting, 0)
	hidden.Confirmed = 0
	w.show(hidden)
	w.show(ann)
	if !w.review || len(w.notes) != 1 {
		t.Errorf("after a session renewal: review %v, notes %q; want the review and the note kept", w.review, w.notes)
	}
}

func TestMergeNotice(t *testing.T) {
	st := userState(testLine("MUG", "Mug", 3, 900, "EUR", nil))
	st.Merge = merged(cart.PolicyMerge, 2, 0, 1, 0, cart.CodeQuantityClamped)
	w := &Widget{open: true, review: true}
	w.show(st)
	got := html(t, w)
	wantHTML(t, got,
		`2 items from this device were added to your cart.`,
		`1 product was already in your cart: the quantities were added together.`,
		`Some quantities were limited to the most a cart can hold.`,
		`Review your order`, `Saved to your account`)
	notice := []int{0, 2, panelNotices, 0}
	match(t, app.P().Class("cartsync-merge").Text("2 items from this device were added to your cart."), w, at(notice, 0)...)
	match(t, app.Button().Class("cartsync-ack").Type("button").Aria("label", "OK, dismiss this notice").OnClick(noop).Text("OK"), w, at(notice, 3)...)

	// Not before the cart shown includes the merge, and not once hidden.
	early := st
	early.Confirmed = 6
	w.show(early)
	if w.mergeNotice() != nil {
		t.Error("merge notice shown before the merged cart")
	}
	w.show(st)
	w.hiddenMerge = st.Merge
	if w.mergeNotice() != nil || w.hasNotice() {
		t.Error("merge notice shown after it was dismissed")
	}
}

func TestChooseView(t *testing.T) {
	guest := &cart.Cart{ID: "g_1", Lines: []*cart.Line{
		testLine("TEE", "T-shirt", 1, 1999, "EUR", nil),
		testLine("MUG", "Mug", 1, 900, "EUR", nil),
	}}
	user := &cart.Cart{ID: "u_1", Version: 2, Lines: []*cart.Line{
		testLine("MUG", "Mug", 2, 900, "EUR", nil),
		testLine("CAP", "Cap", 1, 1500, "EUR", map[string]string{"color": "red"}),
	}}
	st := userState(user.Lines...)
	st.Choice = &protocol.MergeInfo{Status: protocol.MergeChoose, Guest: guest, User: user, Version: 2}
	st.Merge = st.Choice
	w := &Widget{open: true}
	w.show(st)
	got := html(t, w)
	wantHTML(t, got,
		`Choose your cart`,
		`id="cartsync-choice"`, `role="region"`, `aria-labelledby="cartsync-choice-title"`,
		`You have two carts`, `Nothing changes until you choose.`,
		`This device`, `1 × T-shirt`, `1 × Mug`, `2 items`, `Total €28.99`,
		`Your saved cart`, `2 × Mug`, `1 × Cap (color: red)`, `3 items`, `Total €33.00`,
	)
	if strings.Contains(got, "cartsync-merge") {
		t.Error("a merge notice shown for a choice")
	}

	body := []int{0, 2, panelBody}
	match(t, app.Section().ID(choiceID).Class("cartsync-choice").Role("region").Aria("labelledby", "cartsync-choice-title").TabIndex(-1), w, body...)
	options := at(body, 3)
	for i, want := range []struct {
		policy cart.Policy
		class  string
		label  string
	}{
		{cart.PolicyMerge, "cartsync-primary", "Combine them"},
		{cart.PolicyReplace, "cartsync-secondary", "Use this device's cart"},
		{cart.PolicyKeep, "cartsync-secondary", "Keep my saved cart"},
	} {
		match(t, app.Button().
			Class("cartsync-choose "+want.class).
			Type("button").
			DataSet("policy", string(want.policy)).
			Aria("describedby", "cartsync-choose-"+string(want.policy)).
			OnClick(noop).
			Text(want.label), w, at(options, i, 0)...)
	}

	// Picked: the buttons wait for the server's answer.
	busy := &Widget{open: true}
	busy.show(st)
	busy.choosing = cart.PolicyMerge
	got = html(t, busy)
	wantHTML(t, got, `Applying your choice…`, `aria-busy`, `disabled`)
	// Answered: the choice goes, and so does the pick.
	answered := userState(user.Lines...)
	answered.Merge = merged(cart.PolicyMerge, 2, 1, 1, 0)
	busy.show(answered)
	if busy.choosing != "" {
		t.Errorf("choosing = %q after the answer", busy.choosing)
	}
}

func TestNeedsLoginStatus(t *testing.T) {
	tests := []struct {
		name string
		st   syncclient.State
		want string
	}{
		{"needs login", syncclient.State{Status: syncclient.Offline, NeedsLogin: true, User: "alice", Pending: 2}, "Sign in again to sync — 2 changes waiting"},
		{"needs login, nothing waiting", syncclient.State{Status: syncclient.Offline, NeedsLogin: true}, "Sign in again to sync"},
		{"logged in", syncclient.State{Status: syncclient.Synced, User: "alice"}, "Saved to your account"},
		{"logged in, sending", syncclient.State{Status: syncclient.Syncing, User: "alice", Pending: 1}, "Syncing…"},
		// Edits held for a signed-out user's cart are not this cart's.
		{"guest with edits held", syncclient.State{Status: syncclient.Synced, Pending: 2, Waiting: 2}, "Synced"},
		{"offline with edits held", syncclient.State{Status: syncclient.Offline, Pending: 3, Waiting: 2}, "Offline — 1 change waiting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := tt.st
			st.Cart = &cart.Cart{ID: "u_1", Lines: []*cart.Line{testLine("TEE", "T-shirt", 1, 1999, "EUR", nil)}}
			w := &Widget{open: true}
			w.show(st)
			mount(t, w)
			match(t, app.P().Class("cartsync-status").Text(tt.want), w, 0, 2, panelStatus)
			// The cart stays, editable.
			match(t, app.Button().Class("cartsync-step").Type("button").Aria("label", "Increase quantity of T-shirt").OnClick(noop).Text("+"), w, 0, 2, panelBody, 0, 2, 2)
		})
	}

	c := cartOf(syncclient.State{Status: syncclient.Offline, NeedsLogin: true, Pending: 2, Cart: &cart.Cart{ID: "u_1", Lines: []*cart.Line{}}})
	if c.Status != statusLogin || c.Pending != 2 || c.Synced {
		t.Errorf("CART while the login is needed: %+v, want status login with 2 pending", c)
	}
	if c := cartOf(syncclient.State{Status: syncclient.Synced, Pending: 2, Waiting: 2}); c.Pending != 0 || !c.Synced {
		t.Errorf("CART with edits held for another cart: %+v, want none pending", c)
	}
}

func TestExpiredNotice(t *testing.T) {
	st := testState(syncclient.Synced, 0)
	st.CartExpired = true
	st.Dropped = []cart.Op{
		{Client: "a", Seq: 1, Kind: cart.KindAdd, SKU: "TEE", Quantity: 2, Details: &cart.Details{Name: "T-shirt"}},
		{Client: "a", Seq: 2, Kind: cart.KindSet, SKU: "MUG", Quantity: 3},
		{Client: "a", Seq: 3, Kind: cart.KindRemove, SKU: "CAP"},
		{Client: "a", Seq: 4, Kind: cart.KindClear},
	}
	w := &Widget{open: true, ops: &opIndex{}}
	w.ops.remember(cart.Op{Client: "a", Seq: 3, Kind: cart.KindAdd, SKU: "CAP", Details: &cart.Details{Name: "Cap"}})
	w.show(st)
	mount(t, w)
	notice := []int{0, 2, panelNotices, 0}
	match(t, app.P().Class("cartsync-expired").Text("Your previous cart expired after a long time without changes. This is a new cart."), w, at(notice, 0)...)
	match(t, app.P().Class("cartsync-dropped-intro").Text("These changes were made on the expired cart and couldn't be kept:"), w, at(notice, 1)...)
	for i, want := range []string{"Adding 2 × T-shirt", "Changing MUG to 3", "Removing Cap", "Emptying the cart"} {
		match(t, app.Text(want), w, at(notice, 2, i, 0)...)
	}
	match(t, app.Button().Class("cartsync-ack").Type("button").Aria("label", "OK, dismiss this notice").OnClick(noop).Text("OK"), w, at(notice, 3)...)
	// Never a silently empty cart: the notice comes with it.
	match(t, app.P().Class("cartsync-empty").Text("Your cart is empty."), w, 0, 2, panelBody)

	// Without a notice, no notice.
	w2 := &Widget{open: true}
	w2.show(testState(syncclient.Synced, 0))
	if strings.Contains(html(t, w2), `class="cartsync-notice"`) {
		t.Error("a notice shown without anything to tell")
	}
}

// checkReducedTold shows a widget the engine's state after add was applied
// reduced to line, with warning wn, and checks that the panel says want and
// the live region want and the cart's count, items. It returns the widget
// and the state.
func checkReducedTold(t *testing.T, line *cart.Line, add cart.Op, wn cart.Warning, want, items string) (*Widget, syncclient.State) {
	t.Helper()
	st := testState(syncclient.Synced, 0)
	st.Cart = &cart.Cart{ID: "g_1", Lines: []*cart.Line{line}}
	st.Reduced = []protocol.Result{{Client: add.Client, Seq: add.Seq, Status: protocol.StatusApplied, Version: 2, Warnings: []cart.Warning{wn}}}
	w := &Widget{open: true, ops: &opIndex{}}
	w.ops.remember(add)
	w.show(testState(syncclient.Synced, 0))
	w.show(st)
	if !strings.Contains(html(t, w), want) {
		t.Errorf("the panel does not say %q", want)
	}
	if w.said != want+" "+items {
		t.Errorf("live region said %q, want %q and %q", w.said, want, items)
	}
	return w, st
}

// An add the server applied reduced to the stock is told in the panel and
// the live region, by the name the page gave.
func TestReducedIsTold(t *testing.T) {
	w, _ := checkReducedTold(t, testLine("CAP", "Merino wool cap", 3, 1500, "EUR", nil),
		cart.Op{Client: "a", Seq: 1, Kind: cart.KindAdd, SKU: "CAP", Quantity: 5, Details: &cart.Details{Name: "Wool cap"}},
		cart.Warning{Code: cart.CodeStockClamped, Message: "only 3 of Merino wool cap can be bought"},
		"Merino wool cap: the quantity was lowered to what is available.", "3 items in cart.")
	w.dismiss()
	if msgs := w.messages(); len(msgs) != 0 {
		t.Errorf("messages after Dismiss: %q, want none", msgs)
	}
}

// A shopper who meets the catalog's maximum per order is told that limit
// and its number, not that the item ran out: an add reduced to it, an add
// refused at it, and a line's notice, in English, German and Arabic. The
// stock is told as before.
func TestPerOrderLimitIsTold(t *testing.T) {
	two := 2
	perOrder := cart.Warning{Code: cart.CodeStockClamped, Message: "only 2 of Cap can be bought (at most 2 per order)", Limit: cart.Limit{Available: &two, LimitBy: cart.LimitPerOrder}}
	stock := cart.Warning{Code: cart.CodeStockClamped, Message: "only 2 of Cap can be bought (2 in stock)", Limit: cart.Limit{Available: &two, LimitBy: cart.LimitStock}}
	refused := &cart.Error{Code: cart.CodeOutOfStock, Message: "no more Cap can be added: at most 2 per order", Limit: cart.Limit{Available: &two, LimitBy: cart.LimitPerOrder}}
	for _, tt := range []struct {
		lang                                    string
		reduced, reducedCart, refused, notice   string
		stockReduced, stockRefused, stockNotice string
	}{
		{"en",
			"Cap: the quantity was lowered to 2, the most the shop sells per order.",
			"A quantity was lowered to the most the shop sells per order.",
			"Couldn't update Cap: the shop sells at most 2 per order.",
			"At most 2 per order",
			"Cap: the quantity was lowered to what is available.",
			"Couldn't update Cap: there are no more in stock.",
			"Only 2 available"},
		{"de",
			"Cap: Die Menge wurde auf 2 verringert, die Höchstmenge pro Bestellung.",
			"Eine Menge wurde auf die Höchstmenge pro Bestellung verringert.",
			"Cap konnte nicht geändert werden: pro Bestellung sind höchstens 2 möglich.",
			"Höchstens 2 pro Bestellung",
			"Cap: Die Menge wurde auf die verfügbare Anzahl verringert.",
			"Cap konnte nicht geändert werden: es sind keine weiteren vorrätig.",
			"Nur noch 2 verfügbar"},
		{"ar",
			"Cap: خُفّضت الكمية إلى 2، وهو الحد الأقصى لكل طلب.",
			"خُفّضت إحدى الكميات إلى الحد الأقصى لكل طلب.",
			"تعذّر تحديث Cap: الحد الأقصى لكل طلب هو 2.",
			"الحد الأقصى 2 لكل طلب",
			"Cap: خُفّضت الكمية إلى المتوفر.",
			"تعذّر تحديث Cap: لم يتبقَّ المزيد في المخزون.",
			"متوفر اثنان فقط"},
	} {
		t.Run(tt.lang, func(t *testing.T) {
			useLanguage(t, tt.lang, nil)
			for _, c := range []struct{ got, want string }{
				{reducedText("Cap", perOrder), tt.reduced},
				{reducedText("", perOrder), tt.reducedCart},
				{errorText("Cap", refused), tt.refused},
				{availableText(2, cart.LimitPerOrder), tt.notice},
				{reducedText("Cap", stock), tt.stockReduced},
				{errorText("Cap", &cart.Error{Code: cart.CodeOutOfStock, Limit: cart.Limit{Available: &two, LimitBy: cart.LimitStock}}), tt.stockRefused},
				{errorText("Cap", &cart.Error{Code: cart.CodeOutOfStock}), tt.stockRefused}, // a server without the fields
				{availableText(2, cart.LimitStock), tt.stockNotice},
				{availableText(2, ""), tt.stockNotice},
			} {
				if c.got != c.want {
					t.Errorf("got %q, want %q", c.got, c.want)
				}
			}
		})
	}

	// In the panel and the live region, from the engine's state.
	_, st := checkReducedTold(t, testLine("CAP", "Cap", 2, 900, "EUR", nil),
		cart.Op{Client: "a", Seq: 1, Kind: cart.KindAdd, SKU: "CAP", Quantity: 3, Details: &cart.Details{Name: "Cap"}},
		perOrder, "Cap: the quantity was lowered to 2, the most the shop sells per order.", "2 items in cart.")
	// The line's notice when the maximum was lowered under the cart.
	st.Reduced = nil
	st.Notices = []cart.Notice{{Line: "CAP", Limit: cart.Limit{Available: &two, LimitBy: cart.LimitPerOrder}}}
	st.Cart.Lines[0].Quantity = 3
	w := &Widget{open: true}
	w.show(st)
	if h := html(t, w); !strings.Contains(h, "At most 2 per order") || !strings.Contains(h, "Reduce to 2") {
		t.Errorf("the line's notice does not say %q with Reduce to 2", "At most 2 per order")
	}
}

// A login on another device that changed this cart is told in the notice,
// and in the live region, once.
func TestElsewhereNotice(t *testing.T) {
	for _, tt := range []struct {
		e    syncclient.LoginElsewhere
		want string
	}{
		{syncclient.LoginElsewhere{Version: 4, Removed: 2, Added: 1}, "A sign-in on another device replaced the items in this cart."},
		{syncclient.LoginElsewhere{Version: 4, Added: 1}, "A sign-in on another device added items to this cart."},
	} {
		st := userState(testLine("MUG", "Mug", 3, 900, "EUR", nil))
		st.Elsewhere = &tt.e
		w := &Widget{open: true}
		w.sayChange(userState(), st)
		w.show(st)
		mount(t, w)
		notice := []int{0, 2, panelNotices, 0}
		match(t, app.P().Class("cartsync-elsewhere").Text(tt.want), w, at(notice, 0)...)
		match(t, app.Button().Class("cartsync-ack").Type("button").Aria("label", "OK, dismiss this notice").OnClick(noop).Text("OK"), w, at(notice, 1)...)
		if w.said != tt.want {
			t.Errorf("live region said %q, want %q", w.said, tt.want)
		}
	}
}

// TestLoginOpensThePanel: a merge that changed the cart opens the panel on
// the review step once the merged cart is shown; a choice opens it on the
// choice; each once.
func TestLoginOpensThePanel(t *testing.T) {
	c, w, e := newTestClient(t)
	st := userState(testLine("MUG", "Mug", 3, 900, "EUR", nil))
	st.Merge = merged(cart.PolicyMerge, 2, 0, 1, 0)
	before := st
	before.Confirmed = 6 // the merge is told before the merged cart comes
	c.onChange(before)
	e.ConsumeAll()
	if w.open {
		t.Fatal("the panel opened before the merged cart was shown")
	}
	c.onChange(st)
	e.ConsumeAll()
	if !w.open || !w.review {
		t.Fatalf("after a merge: open %v, review %v; want the review step", w.open, w.review)
	}
	w.open, w.review = false, false
	c.onChange(st)
	e.ConsumeAll()
	if w.open {
		t.Error("the panel opened again for the same merge")
	}

	// A merge that changed nothing leaves the panel closed.
	kept := st
	kept.Merge = merged(cart.PolicyKeep, 0, 0, 0, 0)
	c.onChange(kept)
	e.ConsumeAll()
	if w.open {
		t.Error("the panel opened for a merge that kept the cart as it was")
	}

	choice := asking(st)
	c.onChange(choice)
	e.ConsumeAll()
	if !w.open || w.review {
		t.Errorf("after a choice: open %v, review %v; want the panel on the choice", w.open, w.review)
	}
}

// TestChoiceAnsweredAlready: a pick answered already (another tab or
// device combined the carts meanwhile) is told, not dropped in silence.
func TestChoiceAnsweredAlready(t *testing.T) {
	c, w, e := newTestClient(t)
	st := userState(testLine("MUG", "Mug", 3, 900, "EUR", nil))
	choice := asking(st)
	c.onChange(choice)
	e.ConsumeAll()
	already := st
	already.Merge = &protocol.MergeInfo{Status: protocol.MergeAlready, Version: 7}
	c.onChange(already)
	e.ConsumeAll()
	if want := tr(noteChoiceAlready); len(w.notes) != 1 || w.notes[0] != want || w.said != want {
		t.Fatalf("after a pick answered already: notes %q, said %q; want %q", w.notes, w.said, want)
	}
	// An already without a choice asked (a reload, a second tab's login)
	// says nothing.
	c2, w2, e2 := newTestClient(t)
	c2.onChange(already)
	e2.ConsumeAll()
	if len(w2.notes) != 0 || w2.said != "" {
		t.Fatalf("an already not asked for: notes %q, said %q; want nothing", w2.notes, w2.said)
	}
}

// The merge that answers a choice drops the note that the choice could not
// be sent (it was, after all) and is announced.
func TestChoiceAnswered(t *testing.T) {
	c, w, e := newTestClient(t)
	st := userState(testLine("MUG", "Mug", 3, 900, "EUR", nil))
	choice := asking(st)
	c.onChange(choice)
	e.ConsumeAll()
	if w.focusAsked != choiceID {
		t.Errorf("the choice shown: focus asked for %q, want the choice", w.focusAsked)
	}
	c.onChange(choice) // any other change while it is asked (State.Merge is the question too)
	e.ConsumeAll()
	if w.focusAsked != choiceID || w.said != "" {
		t.Errorf("a change while the choice is asked: focus asked for %q, said %q; want the choice left alone, nothing said", w.focusAsked, w.said)
	}
	c.dispatch(func(app.Context) { w.addNote(tr(noteChoiceNotSent)) })
	e.ConsumeAll()
	w.focusAsked = ""
	again := asking(st) // asked anew after a reconnect: a new question
	c.onChange(again)
	e.ConsumeAll()
	if !w.open || len(w.notes) != 1 || w.focusAsked != "" {
		t.Fatalf("asked again: open %v, notes %q, focus asked for %q; want the panel open with the note, the focus left alone", w.open, w.notes, w.focusAsked)
	}

	kept := st
	kept.Merge = merged(cart.PolicyKeep, 0, 0, 0, 0)
	c.onChange(kept)
	e.ConsumeAll()
	if len(w.notes) != 0 || w.focusAsked != titleID {
		t.Errorf("after the choice was answered: notes %q, focus asked for %q; want none, the title", w.notes, w.focusAsked)
	}
	if want := strings.Join(mergeTexts(kept.Merge, 0), " "); want == "" || w.said != want {
		t.Errorf("live region said %q, want %q", w.said, want)
	}
}

func TestMergeEvent(t *testing.T) {
	var a announcer
	st := userState()
	st.Merge = merged(cart.PolicyMerge, 2, 1, 1, 0, cart.CodeQuantityClamped)
	st.MergeLate = 3
	early := st
	early.Confirmed = 6
	a.readyEvent(early)
	if got := eventNames(t, a.stateEvents(early)); len(got) != 0 {
		t.Errorf("events before the merged cart: %q", got)
	}
	msgs := a.stateEvents(st)
	if got := eventNames(t, msgs); !reflect.DeepEqual(got, []string{"change", "merge"}) {
		t.Fatalf("events: %s", msgs)
	}
	msgs = msgs[1:]
	want := `{"cartsync":1,"event":"merge","data":{"status":"merged","policy":"merge","items":2,"added":1,"combined":1,"replaced":0,"late":3,` +
		`"warnings":[{"code":"quantity_clamped","message":"quantity_clamped"}],"version":7}}`
	if got := string(msgs[0]); got != want {
		t.Errorf("merge event =\n%s\nwant\n%s", got, want)
	}
	if got := a.stateEvents(st); got != nil {
		t.Errorf("the same merge announced again: %s", got)
	}
	choice := st
	choice.Merge = &protocol.MergeInfo{Status: protocol.MergeChoose, Version: 7}
	var d struct {
		Data mergeData `json:"data"`
	}
	msgs = a.stateEvents(choice)
	if len(msgs) != 1 || json.Unmarshal(msgs[0], &d) != nil || d.Data.Status != "choose" || d.Data.Policy != "choose" || d.Data.Warnings == nil {
		t.Errorf("choose event: %s", msgs)
	}

	// The sync event tells a needed login.
	login := choice
	login.Status, login.NeedsLogin = syncclient.Offline, true
	msgs = a.stateEvents(login)
	if len(msgs) != 1 || !strings.Contains(string(msgs[0]), `"event":"sync","data":{"status":"login"`) {
		t.Errorf("events when the login is needed: %s", msgs)
	}
}
