package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/auth"
)

// The end-to-end tests of logins: the demo storefront in Chromium is device
// A, logging in through window.cartsync with a token from the demo's
// backend (/demo-token); device B is a native client engine logged in as
// the same user with a token the test signs itself. The helpers are
// browser_test.go's and main_test.go's.

// loginSecret is the HS256 secret the server checks user tokens with, and
// the demo storefront and the tests sign them with.
const loginSecret = "cartsync browser tests: user token secret, 32+ bytes"

// startLoginServer runs the server like startCartServer, with user tokens
// signed with loginSecret, checked without clock-skew leeway so that a
// token expires when it says (the default leeway is 30 s).
func startLoginServer(t *testing.T) *cartServer {
	t.Helper()
	return startLoginServerWith(t, nil)
}

// startLoginServerWith is startLoginServer with pages added to the demo
// storefront (name: HTML).
func startLoginServerWith(t *testing.T, pages map[string]string) *cartServer {
	t.Helper()
	web := repoWeb(t)
	if len(pages) > 0 {
		web = webCopy(t)
		for name, page := range pages {
			if err := os.WriteFile(filepath.Join(web, "demo", name), []byte(page), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := NewMain()
	args := []string{
		"-addr", "127.0.0.1:0", "-log-level", "error", "-data", t.TempDir(), "-web", web,
		"-demo-addr", "127.0.0.1:0",
	}
	if err := m.ParseFlags(args, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	m.demoSecret = []byte(loginSecret) // the demo never runs with a real key
	m.demoNoCatalog = true             // the login flows assume no stock limits

	m.Auth.Leeway = -1 // none
	runMain(t, m)
	return &cartServer{t: t, m: m}
}

// signUser signs a user token as a storefront backend would.
func signUser(t *testing.T, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := auth.NewHS256Signer([]byte(loginSecret)).Sign(user, ttl, "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// expiredUser signs a user token that expired an hour ago.
func expiredUser(t *testing.T, user string) string {
	t.Helper()
	s := auth.NewHS256Signer([]byte(loginSecret))
	s.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	tok, err := s.Sign(user, time.Hour, "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// deviceB is a native client with its own storage (so its own device
// token), logged in as user, with lines added to the user's cart.
func deviceB(t *testing.T, base, user string, lines map[string]int) *syncclient.Engine {
	t.Helper()
	e, err := syncclient.New(syncclient.Config{
		Storage: syncclient.NewMemStorage(), Dial: syncclient.WebsocketDialer(wsURL(base)),
		BackoffBase: 10 * time.Millisecond, BackoffCap: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SetUser(signUser(t, user, time.Minute), ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, e, "device B logged in", func(s syncclient.State) bool { return s.User == user && s.Status == syncclient.Synced })
	for _, sku := range slices.Sorted(maps.Keys(lines)) {
		if err := e.Add(ctx, sku, nil, lines[sku], &cart.Details{Name: productNames[sku], Price: productPrices[sku], Currency: "EUR"}); err != nil {
			t.Fatal(err)
		}
	}
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	defer fcancel()
	if err := e.Flush(fctx); err != nil {
		t.Fatalf("device B: flush: %v", err)
	}
	return e
}

var (
	productNames  = map[string]string{"TEE-01": "Tee", "MUG-01": "Mug", "CAP-01": "Cap", "NOTE-01": "Notebook"}
	productPrices = map[string]int64{"TEE-01": 1999, "MUG-01": 900, "CAP-01": 1500, "NOTE-01": 650}
)

// addAsGuest adds lines through window.cartsync, with their details.
func addAll(tb *tab, lines map[string]int) {
	tb.t.Helper()
	for _, sku := range slices.Sorted(maps.Keys(lines)) {
		call(tb, "add", sku, lines[sku], map[string]any{"name": productNames[sku], "price": productPrices[sku], "currency": "EUR"})
	}
}

// loginResult is what cartsync.login and cartsync.logout resolve with.
type loginResult struct {
	Status string      `json:"status"`
	Merge  *mergeEvent `json:"merge"`
	Cart   hostCart    `json:"cart"`
}

// loginAs fetches a token for user from the demo storefront's backend (ttl
// "" for its default) and logs the cart in with policy ("" for the
// server's default). It returns what cartsync.login resolved with, once
// the server answered.
func loginAs(tb *tab, user, ttl, policy string) loginResult {
	tb.t.Helper()
	q := "user=" + user
	if ttl != "" {
		q += "&ttl=" + ttl
	}
	opts := "{}"
	if policy != "" {
		opts = "{policy: " + jsArgs([]any{policy}) + "}"
	}
	r := eval[loginResult](tb, `fetch('/demo-token?`+q+`')
		.then((r) => { if (!r.ok) throw new Error('demo-token: ' + r.status); return r.json(); })
		.then((j) => cartsync.login(j.token, `+opts+`))`)
	if r.Status != "done" || !strings.HasPrefix(r.Cart.ID, "u_") {
		tb.t.Fatalf("%s: cartsync.login resolved with %+v, want status done on the user's cart", tb.name, r)
	}
	return r
}

// mergeEvent is the data of the bridge's merge event.
type mergeEvent struct {
	Status   string `json:"status"`
	Policy   string `json:"policy"`
	Items    int    `json:"items"`
	Late     int    `json:"late"`
	Added    int    `json:"added"`
	Combined int    `json:"combined"`
	Replaced int    `json:"replaced"`
	Warnings []struct {
		Code string `json:"code"`
	} `json:"warnings"`
	Version uint64 `json:"version"`
}

// recordMerges makes the page keep every merge event.
func recordMerges(tb *tab) {
	tb.t.Helper()
	eval[bool](tb, `(window.__merges = [], cartsync.on('merge', (m) => window.__merges.push(m)), true)`)
}

// waitMerges waits until the page got n merge events, and returns them.
func waitMerges(tb *tab, n int) []mergeEvent {
	tb.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms := eval[[]mergeEvent](tb, `window.__merges`)
		if len(ms) >= n {
			return ms
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: %d merge events, want %d: %+v", tb.name, len(ms), n, ms)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitWidgetText polls expr (a string expression evaluated in the widget's
// frame) until it is want: the widget renders the engine's state a moment
// after the host's calls return.
func waitWidgetText(tb *tab, cartOrigin, what, expr, want string) {
	tb.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := evalInWidget[string](tb, cartOrigin, `(() => `+expr+` || '')()`)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Errorf("%s: the widget shows %s %q, want %q", tb.name, what, got, want)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkMergeLogged checks that the last change of the user's cart is the
// login merge of the guest cart, at version v.
func checkMergeLogged(t *testing.T, srv *cartServer, userID, guestID string, v uint64) {
	t.Helper()
	log := srv.changes(userID)
	if len(log) == 0 {
		t.Fatal("the user's cart has no change log")
	}
	last := log[len(log)-1]
	if last.Version != v || last.Op.Client != syncserver.MergeClient || last.Op.Kind != cart.KindMerge || last.Op.Cart != guestID {
		t.Errorf("last change %+v, want the merge of %s at version %d", last, guestID, v)
	}
}

// TestBrowserLoginMerge: a guest adds items on device A (the browser) and
// logs in; the user's cart from device B (a native client) is merged by the
// chosen policy; device B shows the result live.
func TestBrowserLoginMerge(t *testing.T) {
	userLines := map[string]int{"MUG-01": 2, "CAP-01": 1}
	guestLines := map[string]int{"TEE-01": 1, "MUG-01": 1}
	tests := []struct {
		policy                           string
		want                             quantities
		items, added, combined, replaced int
		notice                           string
	}{
		{"merge", quantities{"MUG-01": 3, "CAP-01": 1, "TEE-01": 1}, 2, 1, 1, 0, "2 items from this device were added to your cart."},
		{"replace", quantities{"MUG-01": 1, "TEE-01": 1}, 2, 2, 0, 2, "Your cart now holds the 2 items from this device."},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			srv := startLoginServer(t)
			userID := syncserver.UserCartID("alice")
			b := deviceB(t, srv.origin(), "alice", userLines)
			srv.checkServer(userID, quantities(userLines), 2)

			br := startBrowser(t, t.TempDir())
			tb := br.first
			tb.navigate(srv.demo() + "/")
			ready(tb)
			addAll(tb, guestLines)
			guest := waitSynced(tb, quantities(guestLines))
			if !strings.HasPrefix(guest.ID, "g_") {
				t.Fatalf("the guest's cart %s", guest)
			}
			recordMerges(tb)

			start := time.Now()
			lr := loginAs(tb, "alice", "", tt.policy)
			// Resolved once the server answered: with the merge and
			// the merged cart.
			if m := lr.Merge; m == nil || m.Status != "merged" || m.Policy != tt.policy || m.Items != tt.items || m.Version != 3 ||
				lr.Cart.ID != userID || lr.Cart.Version != 3 || !maps.Equal(lr.Cart.quantities(), tt.want) {
				t.Errorf("cartsync.login resolved with %+v (merge %+v), want the %s merge and the merged cart at version 3", lr, lr.Merge, tt.policy)
			}
			waitFor(t, b, "the login's "+tt.policy+" on device B", func(s syncclient.State) bool {
				return maps.Equal(engineQuantities(s.Cart), tt.want) && s.Confirmed == 3
			})
			t.Logf("login (%s) → device B shows the result: %v", tt.policy, time.Since(start).Round(time.Millisecond))
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("device B saw the login's result after %v, want within 5 s", d)
			}
			c := waitSynced(tb, tt.want)
			if c.ID != userID || c.Version != 3 {
				t.Errorf("device A after the login: %s, want the user's cart %s at version 3", c, userID)
			}
			srv.checkServer(userID, tt.want, 3)
			checkMergeLogged(t, srv, userID, guest.ID, 3)
			if rec := srv.record(guest.ID); rec.Meta.MergedInto != userID {
				t.Errorf("the guest cart is marked merged into %q, want %q", rec.Meta.MergedInto, userID)
			}

			ms := waitMerges(tb, 1)
			m := ms[0]
			if len(ms) != 1 || m.Status != "merged" || m.Policy != tt.policy || m.Items != tt.items || m.Added != tt.added ||
				m.Combined != tt.combined || m.Replaced != tt.replaced || len(m.Warnings) != 0 || m.Version != 3 {
				t.Errorf("merge events %+v, want one: merged by %s, %d items, %d added, %d combined, %d replaced, at version 3",
					ms, tt.policy, tt.items, tt.added, tt.combined, tt.replaced)
			}
			// The shopper is shown what changed, on the review step.
			waitWidgetText(tb, srv.origin(), "as the merge notice", `document.querySelector('.cartsync-merge')?.textContent`, tt.notice)
			waitWidgetText(tb, srv.origin(), "as the panel's title", `document.getElementById('cartsync-title')?.textContent`, "Review your order")

			// Logout: this device gets a fresh guest cart; the user's cart
			// stays on the server, and on device B.
			if out := eval[loginResult](tb, `cartsync.logout()`); out.Status != "done" || !strings.HasPrefix(out.Cart.ID, "g_") || out.Cart.ID == guest.ID || out.Merge != nil {
				t.Fatalf("cartsync.logout resolved with %+v, want status done on a fresh guest cart", out)
			}
			c = waitCart(tb, "a fresh guest cart after the logout", 10*time.Second, func(c hostCart) bool {
				return strings.HasPrefix(c.ID, "g_") && c.ID != guest.ID && synced(c)
			})
			if len(c.Lines) != 0 {
				t.Errorf("after the logout: %s, want a fresh, empty guest cart", c)
			}
			waitWidgetText(tb, srv.origin(), "as a message", `document.querySelector('.cartsync-message')?.textContent`,
				"You're signed out. Your cart is saved to your account for the next time you sign in.")
			srv.checkServer(userID, tt.want, 3)
			if s := b.Snapshot(); !maps.Equal(engineQuantities(s.Cart), tt.want) || s.Confirmed != 3 {
				t.Errorf("device B after A's logout: %s v%d", engineQuantities(s.Cart), s.Confirmed)
			}
		})
	}
}

// choiceView is what the widget shows of a login choice.
type choiceView struct {
	Role    string   `json:"role"`
	Label   string   `json:"label"`
	Focused bool     `json:"focused"`
	Guest   []string `json:"guest"`
	User    []string `json:"user"`
	Totals  []string `json:"totals"`
	Buttons []string `json:"buttons"`
}

// TestBrowserLoginChoose: with the policy choose the widget shows both carts
// and changes nothing until the shopper picks; "Combine them" merges them,
// and device B sees it.
func TestBrowserLoginChoose(t *testing.T) {
	srv := startLoginServer(t)
	userID := syncserver.UserCartID("alice")
	userLines := quantities{"MUG-01": 2, "CAP-01": 1}
	b := deviceB(t, srv.origin(), "alice", userLines)

	br := startBrowser(t, t.TempDir())
	tb := br.first
	tb.navigate(srv.demo() + "/")
	ready(tb)
	guestLines := quantities{"TEE-01": 1, "MUG-01": 1}
	addAll(tb, guestLines)
	guestID := waitSynced(tb, guestLines).ID
	recordMerges(tb)
	// Whether the choice had the focus at some moment: the focus goes to it
	// as it is drawn, and the frame's document may lose it right after, when
	// the browser moves its own focus between the test's page and the frame
	// (seen in a fresh-clone run: the frame's window blurred 7 ms after, and
	// its active element went back to the body). A shopper who comes back
	// to the frame gets it back (onFrameFocus).
	evalInWidget[bool](tb, srv.origin(), `(() => {
		window.__choiceFocused = false;
		const look = () => {
			const r = document.getElementById('cartsync-choice');
			if (r && document.activeElement === r) window.__choiceFocused = true;
		};
		new MutationObserver(look).observe(document.body, {subtree: true, childList: true, attributes: true});
		const tick = setInterval(() => { look(); if (window.__choiceFocused) clearInterval(tick); }, 2);
		return true;
	})()`)
	if lr := loginAs(tb, "alice", "", "choose"); lr.Merge == nil || lr.Merge.Status != "choose" || lr.Merge.Policy != "choose" {
		t.Errorf("cartsync.login with choose resolved with merge %+v, want status choose", lr.Merge)
	}

	var v choiceView
	deadline := time.Now().Add(10 * time.Second)
	for {
		v = evalInWidget[choiceView](tb, srv.origin(), `(() => {
			const r = document.getElementById('cartsync-choice');
			if (!r) return {};
			const texts = (sel) => [...r.querySelectorAll(sel)].map((e) => e.textContent);
			return {
				role: r.getAttribute('role'),
				label: document.getElementById(r.getAttribute('aria-labelledby'))?.textContent || '',
				focused: document.activeElement === r || window.__choiceFocused,
				guest: texts('#cartsync-choice-guest .cartsync-review-what'),
				user: texts('#cartsync-choice-user .cartsync-review-what'),
				totals: texts('.cartsync-choice-total'),
				buttons: texts('button.cartsync-choose'),
			};
		})()`)
		// The focus moves to the choice just after it renders.
		if len(v.Buttons) == 3 && v.Focused {
			break
		}
		if time.Now().After(deadline) {
			break // the comparison below says what is missing
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := choiceView{
		Role: "region", Label: "You have two carts", Focused: true,
		Guest:   []string{"1 × Mug", "1 × Tee"},
		User:    []string{"1 × Cap", "2 × Mug"},
		Totals:  []string{"Total €28.99", "Total €33.00"},
		Buttons: []string{"Combine them", "Use this device's cart", "Keep my saved cart"},
	}
	if fmt.Sprint(v) != fmt.Sprint(want) {
		t.Errorf("the choice shows\n%+v\nwant\n%+v", v, want)
	}
	// Shown from its top: its heading clear of the sticky head.
	if clear := evalInWidget[bool](tb, srv.origin(), `(() => {
		const h = document.getElementById('cartsync-choice-title').getBoundingClientRect();
		const head = document.querySelector('.cartsync-head').getBoundingClientRect();
		return h.top >= head.bottom;
	})()`); !clear {
		t.Error("the choice's heading is under the panel's head")
	}

	// Nothing changed before the pick: not the user's cart, not the guest's,
	// not device B.
	srv.checkServer(userID, userLines, 2)
	if rec := srv.record(guestID); rec.Meta.MergedInto != "" || !maps.Equal(recordQuantities(rec), guestLines) {
		t.Errorf("the guest cart before the pick: merged into %q, %s", rec.Meta.MergedInto, recordQuantities(rec))
	}
	if s := b.Snapshot(); !maps.Equal(engineQuantities(s.Cart), userLines) || s.Confirmed != 2 {
		t.Errorf("device B before the pick: %s v%d", engineQuantities(s.Cart), s.Confirmed)
	}
	if ms := waitMerges(tb, 1); len(ms) != 1 || ms[0].Status != "choose" || ms[0].Policy != "choose" || ms[0].Version != 2 {
		t.Errorf("merge events before the pick: %+v, want one with status choose", ms)
	}

	start := time.Now()
	if !evalInWidget[bool](tb, srv.origin(), `(document.querySelector('button.cartsync-choose[data-policy="merge"]').click(), true)`) {
		t.Fatal("click")
	}
	merged := quantities{"MUG-01": 3, "CAP-01": 1, "TEE-01": 1}
	waitFor(t, b, "the chosen merge on device B", func(s syncclient.State) bool {
		return maps.Equal(engineQuantities(s.Cart), merged) && s.Confirmed == 3
	})
	t.Logf("click → device B shows the merge: %v", time.Since(start).Round(time.Millisecond))
	if c := waitSynced(tb, merged); c.ID != userID {
		t.Errorf("device A after the pick: %s", c)
	}
	srv.checkServer(userID, merged, 3)
	checkMergeLogged(t, srv, userID, guestID, 3)
	ms := waitMerges(tb, 2)
	if m := ms[1]; len(ms) != 2 || m.Status != "merged" || m.Policy != "merge" || m.Items != 2 || m.Added != 1 || m.Combined != 1 || m.Version != 3 {
		t.Errorf("merge events %+v, want choose then merged by merge (2 items, 1 added, 1 combined) at version 3", ms)
	}
	waitWidgetText(tb, srv.origin(), "as the merge notice", `document.querySelector('.cartsync-merge')?.textContent`, "2 items from this device were added to your cart.")
	if n := evalInWidget[int](tb, srv.origin(), `document.querySelectorAll('#cartsync-choice').length`); n != 0 {
		t.Error("the choice is still shown after the pick")
	}
}

// TestBrowserLoginTokenExpiry: the user token expires; the widget asks for
// a login (status login), keeps the edits made meanwhile without applying
// them anywhere, and sends them once after the next login.
func TestBrowserLoginTokenExpiry(t *testing.T) {
	srv := startLoginServer(t)
	userID := syncserver.UserCartID("alice")
	br, guest := guestWithTee(t, srv)
	tb, guestID := br.first, guest.ID

	const ttl = 3 * time.Second
	loginAs(tb, "alice", ttl.String(), "merge")
	expires := time.Now().Add(ttl) // signed before now: expired by then
	first := quantities{"TEE-01": 1}
	waitCart(tb, "alice's cart", 10*time.Second, func(c hostCart) bool {
		return c.ID == userID && synced(c) && maps.Equal(c.quantities(), first)
	})
	srv.checkServer(userID, first, 1)
	guestRec := srv.record(guestID)
	guestBefore, guestVersion := recordQuantities(guestRec), guestRec.Cart.Version

	// The server checks the token at hello only: the open connection stays
	// up after the expiry. A reconnect after it meets the expiry.
	recordSync(tb)
	outlive(tb, expires)

	call(tb, "add", "NOTE-01", 2)
	c := call(tb, "setQuantity", "TEE-01", 3)
	want := quantities{"TEE-01": 3, "NOTE-01": 2}
	if c.ID != userID || !maps.Equal(c.quantities(), want) || c.Status != "login" || c.Pending != 2 || c.Synced {
		t.Fatalf("edits under the expired token: %s, want alice's cart %s with 2 pending, status login", c, want)
	}
	events := eval[[]syncEvent](tb, `window.__sync`)
	if !slices.ContainsFunc(events, func(e syncEvent) bool { return e.Status == "login" }) {
		t.Errorf("no sync event with status login: %+v", events)
	}
	eval[bool](tb, `cartsync.open()`)
	const statusLine = `document.querySelector('.cartsync-status')?.textContent`
	waitWidgetText(tb, srv.origin(), "as its status", statusLine, "Sign in again to sync — 2 changes waiting")
	// Kept, applied nowhere: not to alice's cart, not to the guest cart.
	time.Sleep(300 * time.Millisecond)
	srv.checkServer(userID, first, 1)
	if rec := srv.record(guestID); !maps.Equal(recordQuantities(rec), guestBefore) || rec.Cart.Version != guestVersion {
		t.Errorf("the guest cart changed: %s v%d, was %s v%d", recordQuantities(rec), rec.Cart.Version, guestBefore, guestVersion)
	}
	if c := call(tb, "cart"); c.Status != "login" || c.Pending != 2 {
		t.Errorf("before the new login: %s", c)
	}

	loginAs(tb, "alice", "", "")
	c = waitSynced(tb, want)
	if c.ID != userID || c.Version != 3 {
		t.Errorf("after the new login: %s, want alice's cart at version 3", c)
	}
	srv.checkServer(userID, want, 3) // each edit once
	if rec := srv.record(guestID); !maps.Equal(recordQuantities(rec), guestBefore) || rec.Cart.Version != guestVersion {
		t.Errorf("the guest cart changed: %s v%d, was %s v%d", recordQuantities(rec), rec.Cart.Version, guestBefore, guestVersion)
	}
	waitWidgetText(tb, srv.origin(), "as its status after the new login", statusLine, "Saved to your account")

	// A token the server refuses rejects the login with the server's
	// code, and the widget asks for a new login.
	if code := eval[string](tb, `cartsync.login(`+jsArgs([]any{expiredUser(t, "alice")})+`).then(() => 'resolved', (e) => e.code)`); code != "token_expired" {
		t.Errorf("cartsync.login with an expired token: %s, want rejected with token_expired", code)
	}
	waitStatus(tb, "login")
}

// TestBrowserEditsDuringLoginInFlight: the shopper adds an item, clicks "Log
// in", and adds two more while the login is in flight, without waiting for
// anything. Every item ends up once in the account's cart, on the server and
// in the widget. Three accounts in a row on
// one device (logging out in between), since the window is narrow.
func TestBrowserEditsDuringLoginInFlight(t *testing.T) {
	srv := startLoginServer(t)
	br := startBrowser(t, t.TempDir())
	tb := br.first
	tb.navigate(srv.demo() + "/")
	ready(tb)
	want := quantities{"MUG-01": 1, "TEE-01": 1, "CAP-01": 1}
	for i, user := range []string{"alice", "bob", "carol"} {
		if i > 0 {
			eval[loginResult](tb, `cartsync.logout()`)
			waitCart(tb, "a fresh guest cart", 10*time.Second, func(c hostCart) bool {
				return synced(c) && strings.HasPrefix(c.ID, "g_") && len(c.Lines) == 0
			})
		}
		details := func(sku string) string {
			return jsArgs([]any{sku, 1, map[string]any{"name": productNames[sku], "price": productPrices[sku], "currency": "EUR"}})
		}
		r := eval[loginResult](tb, `fetch('/demo-token?user=`+user+`')
			.then((r) => r.json())
			.then((j) => {
				const first = cartsync.add(`+details("MUG-01")+`);
				const login = cartsync.login(j.token);
				const more = [cartsync.add(`+details("TEE-01")+`), cartsync.add(`+details("CAP-01")+`)];
				return Promise.all([first, login, ...more]).then((all) => all[1]);
			})`)
		if r.Status != "done" {
			t.Fatalf("%s: login resolved with %+v", user, r)
		}
		c := waitCart(tb, user+"'s cart with every item", 15*time.Second, func(c hostCart) bool {
			return synced(c) && c.ID == syncserver.UserCartID(user) && maps.Equal(c.quantities(), want)
		})
		if got := recordQuantities(srv.record(c.ID)); !maps.Equal(got, want) {
			t.Errorf("%s: the server holds %s, want %s", user, got, want)
		}
	}
}

// demoToken fetches a user token from the demo storefront's backend.
func demoToken(tb *tab, user string) string {
	tb.t.Helper()
	return eval[string](tb, `fetch('/demo-token?user=`+user+`').then((r) => r.json()).then((j) => j.token)`)
}

// addJS is a cartsync.add call for sku with its demo details.
func addJS(sku string) string {
	return `cartsync.add(` + jsArgs([]any{sku, 1, map[string]any{"name": productNames[sku], "price": productPrices[sku], "currency": "EUR"}}) + `)`
}

// TestBrowserLoginWindows: the other windows around a login, in the real
// widget: edits and the login made offline; a second tab that goes on
// editing the guest cart while the first logs in; a logout that interrupts
// a login. Every item ends up once in the account's cart.
func TestBrowserLoginWindows(t *testing.T) {
	want := quantities{"MUG-01": 1, "TEE-01": 1, "CAP-01": 1}
	userCart := func(tb *tab, user string, want quantities) {
		tb.t.Helper()
		waitCart(tb, user+"'s cart with every item", 20*time.Second, func(c hostCart) bool {
			return synced(c) && c.ID == syncserver.UserCartID(user) && maps.Equal(c.quantities(), want)
		})
	}

	t.Run("Offline", func(t *testing.T) {
		srv := startLoginServer(t)
		tb := startBrowser(t, t.TempDir()).first
		tb.navigate(srv.demo() + "/")
		ready(tb)
		tok := demoToken(tb, "alice")
		tb.setOffline(true, "")
		waitStatus(tb, "offline")
		r := eval[loginResult](tb, addJS("MUG-01")+`.then(() => cartsync.login(`+jsArgs([]any{tok})+`))
			.then((r) => Promise.all([`+addJS("TEE-01")+`, `+addJS("CAP-01")+`]).then(() => r))`)
		if r.Status != "queued" {
			t.Errorf("login offline resolved with %+v, want queued", r)
		}
		tb.setOffline(false, "")
		userCart(tb, "alice", want)
		if got := recordQuantities(srv.record(syncserver.UserCartID("alice"))); !maps.Equal(got, want) {
			t.Errorf("the server holds %s, want %s", got, want)
		}
	})

	t.Run("AnotherTab", func(t *testing.T) {
		srv := startLoginServer(t)
		b := startBrowser(t, t.TempDir())
		a := b.first
		a.navigate(srv.demo() + "/")
		ready(a)
		bt := b.newTab("tab B")
		bt.navigate(srv.demo() + "/")
		ready(bt)
		call(bt, "add", "MUG-01", 1, map[string]any{"name": "Mug", "price": 900, "currency": "EUR"})
		tok := demoToken(a, "bob")
		// Tab B edits the guest cart while tab A logs in, and after.
		eval[bool](bt, `(window.__adds = [`+addJS("TEE-01")+`], true)`)
		eval[loginResult](a, `cartsync.login(`+jsArgs([]any{tok})+`)`)
		eval[hostCart](bt, addJS("CAP-01"))
		eval[bool](bt, `Promise.all(window.__adds).then(() => true)`)
		// The storefront tells tab B at its next page view.
		if r := eval[loginResult](bt, `cartsync.login(`+jsArgs([]any{tok})+`)`); r.Status != "done" {
			t.Errorf("tab B's login resolved with %+v", r)
		}
		userCart(bt, "bob", want)
		userCart(a, "bob", want)
		if got := recordQuantities(srv.record(syncserver.UserCartID("bob"))); !maps.Equal(got, want) {
			t.Errorf("the server holds %s, want %s", got, want)
		}
	})

	t.Run("LogoutDuringLogin", func(t *testing.T) {
		srv := startLoginServer(t)
		tb := startBrowser(t, t.TempDir()).first
		tb.navigate(srv.demo() + "/")
		ready(tb)
		tok := demoToken(tb, "carol")
		eval[bool](tb, `(() => {
			const all = [`+addJS("MUG-01")+`, cartsync.login(`+jsArgs([]any{tok})+`).catch(() => null), `+addJS("TEE-01")+`,
				cartsync.logout(), `+addJS("CAP-01")+`];
			return Promise.all(all).then(() => true);
		})()`)
		waitCart(tb, "a guest cart after the logout", 20*time.Second, func(c hostCart) bool {
			return synced(c) && strings.HasPrefix(c.ID, "g_")
		})
		if r := eval[loginResult](tb, `cartsync.login(`+jsArgs([]any{demoToken(tb, "carol")})+`)`); r.Status != "done" {
			t.Errorf("the second login resolved with %+v", r)
		}
		userCart(tb, "carol", want)
		if got := recordQuantities(srv.record(syncserver.UserCartID("carol"))); !maps.Equal(got, want) {
			t.Errorf("the server holds %s, want %s", got, want)
		}
	})
}

// A shared device: the account's cart the device keeps is not the next
// person's. Logging out offline shows an empty cart at once; a page that
// loads offline and does not log in hides the account's cart after the
// login grace; either way the next person's add goes to this device's own
// cart when it is back online, not into the account's.
func TestBrowserSharedDeviceHidesTheLastAccount(t *testing.T) {
	for _, how := range []string{"logout offline", "page without login offline"} {
		t.Run(how, func(t *testing.T) {
			srv := startLoginServer(t)
			userID := syncserver.UserCartID("alice")
			br, _ := guestWithTee(t, srv)
			tb := br.first
			waitPrecached(tb, srv.origin())
			loginAs(tb, "alice", "", "merge")
			waitCart(tb, "alice's cart", 10*time.Second, func(c hostCart) bool { return c.ID == userID && synced(c) })

			if how == "logout offline" {
				tb.setOffline(true, "")
				waitStatus(tb, "offline")
				if out := eval[loginResult](tb, `cartsync.logout()`); out.Status != "queued" {
					t.Errorf("cartsync.logout offline resolved with %+v, want queued", out)
				}
			} else {
				tb.setOffline(true, srv.demo())
				tb.navigate(srv.demo() + "/")
				ready(tb)
			}
			c := waitCart(tb, "the account's cart hidden", 10*time.Second, func(c hostCart) bool {
				return c.ID == "" && len(c.Lines) == 0
			})
			if c.Status != "offline" {
				t.Errorf("the hidden cart: %s, want status offline", c)
			}
			eval[bool](tb, `cartsync.open()`)
			waitWidget(tb, srv.origin(), "the panel open on an empty cart", `!!document.querySelector('#cartsync-panel .cartsync-empty')`)
			if n := evalInWidget[int](tb, srv.origin(), `document.querySelectorAll('.cartsync-line').length`); n != 0 {
				t.Errorf("the widget shows %d lines of the account's cart", n)
			}
			eval[bool](tb, `cartsync.close()`)
			c = call(tb, "add", "MUG-01", 1)
			if !maps.Equal(c.quantities(), quantities{"MUG-01": 1}) {
				t.Errorf("after the next person's add: %s, want the mug only", c)
			}

			tb.setOffline(false, "")
			c = waitSynced(tb, quantities{"MUG-01": 1})
			if !strings.HasPrefix(c.ID, "g_") {
				t.Errorf("online: %s, want this device's guest cart", c)
			}
			srv.checkServer(userID, quantities{"TEE-01": 1}, 1)
		})
	}
}

// The demo storefront logs the cart in again on every page with the policy
// the shopper picked: a reload while the widget asks them to choose asks
// again instead of merging for them.
func TestBrowserDemoLoginKeepsThePolicyAcrossReloads(t *testing.T) {
	srv := startLoginServer(t)
	br, _ := guestWithTee(t, srv)
	tb := br.first
	eval[bool](tb, `(() => {
		document.querySelector('#demo-login select[aria-label="Demo user"]').value = 'alice';
		document.querySelector('#demo-login select:not([aria-label="Demo user"])').value = 'choose';
		[...document.querySelectorAll('#demo-login button')].find((b) => b.textContent === 'Log in').click();
		return true;
	})()`)
	waitWidget(tb, srv.origin(), "the choice", `!!document.getElementById('cartsync-choice')`)

	tb.navigate(srv.demo() + "/")
	ready(tb)
	waitWidget(tb, srv.origin(), "the choice again after the reload", `!!document.getElementById('cartsync-choice')`)
	// The choice comes with the login's welcome, just before alice's cart.
	c := waitCart(tb, "alice's cart", 10*time.Second, func(c hostCart) bool { return c.ID == syncserver.UserCartID("alice") })
	if len(c.Lines) != 0 {
		t.Errorf("after the reload: %s, want alice's cart still without this device's tee", c)
	}
}

// TestBrowserDemoLoginPolicyReachesOtherTabs: the demo's login in one tab
// with "Let me choose" logs the other tabs in with the same policy: they
// ask too, and nothing merges until the shopper picks. (The demo stored
// the user before the policy, and the other tabs, acting on the user,
// read the last policy, merge by default, and merged.)
func TestBrowserDemoLoginPolicyReachesOtherTabs(t *testing.T) {
	srv := startLoginServer(t)
	br, _ := guestWithTee(t, srv)
	one := br.first
	two := demoTab(br, srv, "tab 2")
	eval[bool](one, `(() => {
		document.querySelector('#demo-login select[aria-label="Demo user"]').value = 'alice';
		document.querySelector('#demo-login select:not([aria-label="Demo user"])').value = 'choose';
		[...document.querySelectorAll('#demo-login button')].find((b) => b.textContent === 'Log in').click();
		return true;
	})()`)
	for _, tb := range []*tab{one, two} {
		waitWidget(tb, srv.origin(), "the choice in "+tb.name, `!!document.getElementById('cartsync-choice')`)
	}
	time.Sleep(time.Second)
	rec, err := srv.m.store.Load(t.Context(), syncserver.UserCartID("alice"), nil)
	if err == nil && len(rec.Cart.Lines) != 0 {
		t.Errorf("alice's cart holds %s before the shopper picked", recordQuantities(rec))
	}
}

// A logout in one tab logs the device's other tabs out too: the
// storefront's session is the device's, and a tab left on the account's
// cart would show it to whoever comes next. Screen readers are not told
// the widget went offline and came back: it did not.
func TestBrowserLogoutReachesOtherTabs(t *testing.T) {
	srv := startLoginServer(t)
	userID := syncserver.UserCartID("alice")
	br, _ := guestWithTee(t, srv)
	one := br.first
	loginAs(one, "alice", "", "merge")
	two := demoTab(br, srv, "tab 2")
	loginAs(two, "alice", "", "merge")
	waitCart(two, "alice's cart in tab 2", 10*time.Second, func(c hostCart) bool { return c.ID == userID && synced(c) })
	recordLive(one, srv.origin())
	recordLive(two, srv.origin())

	if out := eval[loginResult](one, `cartsync.logout()`); out.Status != "done" {
		t.Fatalf("cartsync.logout resolved with %+v", out)
	}
	c := waitCart(two, "tab 2 logged out", 10*time.Second, func(c hostCart) bool {
		return strings.HasPrefix(c.ID, "g_") && synced(c)
	})
	if len(c.Lines) != 0 {
		t.Errorf("tab 2 after tab 1's logout: %s, want this device's fresh cart", c)
	}
	// Neither tab went offline: both reconnected at once as guests (the
	// one whose new device token came second takes the other's).
	time.Sleep(time.Second)
	for _, tb := range []*tab{one, two} {
		if said := liveSaid(tb, srv.origin()); slices.ContainsFunc(said, func(s string) bool { return strings.HasPrefix(s, "Offline.") || s == "Back online." }) {
			t.Errorf("%s: the live region said %q after the logout, want nothing of going offline or back online", tb.name, said)
		}
	}
	eval[bool](two, `cartsync.open()`)
	waitWidgetText(two, srv.origin(), "as a message in tab 2", `document.querySelector('.cartsync-message')?.textContent`,
		"You're signed out. Your cart is saved to your account for the next time you sign in.")
}

// demoTab opens the demo storefront in a new tab of br, ready.
func demoTab(br *browser, srv *cartServer, name string) *tab {
	tb := br.newTab(name)
	tb.navigate(srv.demo() + "/")
	ready(tb)
	return tb
}

// outlive takes tb offline until its user token, which expires at expires,
// has expired, and back: the server checks the token at hello only, so the
// connection open before stays up past the expiry, and the next one meets
// it. The widget then waits for a login.
func outlive(tb *tab, expires time.Time) {
	tb.t.Helper()
	tb.setOffline(true, "")
	waitStatus(tb, "offline")
	time.Sleep(time.Until(expires) + 200*time.Millisecond)
	tb.setOffline(false, "")
	waitStatus(tb, "login")
}

// guestWithTee opens the demo in a browser of its own and adds a tee to
// the device's guest cart, synced in its first tab; it returns the browser
// and that cart.
func guestWithTee(t *testing.T, srv *cartServer) (*browser, hostCart) {
	t.Helper()
	br := startBrowser(t, t.TempDir())
	br.first.navigate(srv.demo() + "/")
	ready(br.first)
	call(br.first, "add", "TEE-01", 1)
	return br, waitSynced(br.first, quantities{"TEE-01": 1})
}

// A page left into the back/forward cache while logged in, and shown again
// after another tab logged the device out, comes back logged out: its
// channel to the other tabs was closed while it was cached, so it did not
// hear the logout, and it showed the account's cart to whoever pressed
// Back. The connection the widget closed as the page was cached is not
// told to screen readers as going offline, nor the next as coming back.
func TestBrowserLogoutWhileInBackForwardCache(t *testing.T) {
	srv := startLoginServer(t)
	userID := syncserver.UserCartID("alice")
	br, _ := guestWithTee(t, srv)
	one := br.first
	loginAs(one, "alice", "", "merge")
	waitCart(one, "alice's cart", 10*time.Second, func(c hostCart) bool { return c.ID == userID && synced(c) })
	// Everything the live region says from here on.
	recordLive(one, srv.origin())

	keepForBack(one)
	one.navigate(srv.demo() + "/admin.html")
	two := demoTab(br, srv, "tab 2")
	loginAs(two, "alice", "", "merge")
	if out := eval[loginResult](two, `cartsync.logout()`); out.Status != "done" {
		t.Fatalf("cartsync.logout resolved with %+v", out)
	}

	backFromCache(one, "/")
	c := waitCart(one, "the page back from the cache logged out", 10*time.Second, func(c hostCart) bool {
		return strings.HasPrefix(c.ID, "g_") && synced(c)
	})
	if len(c.Lines) != 0 {
		t.Errorf("the page back from the cache: %s, want this device's fresh cart", c)
	}
	if said := liveSaid(one, srv.origin()); slices.ContainsFunc(said, func(s string) bool {
		return strings.HasPrefix(s, "Offline.") || s == "Back online."
	}) {
		t.Errorf("the live region said %q; want nothing of going offline or coming back", said)
	}
}

// The demo storefront renews its session before the token it gave the
// cart expires, as a storefront does: a page left open stays logged in to
// the account's cart (it asked the shopper to sign in again once the
// token expired, 10 minutes after the page's load).
func TestBrowserDemoRenewsTheSession(t *testing.T) {
	srv := startLoginServer(t)
	br, _ := guestWithTee(t, srv)
	tb := br.first
	userID := syncserver.UserCartID("alice")
	eval[bool](tb, `(window.__statuses = [], cartsync.on('sync', (s) => window.__statuses.push(s.status)), true)`)
	demoLogIn(tb, "alice", "4s")
	waitCart(tb, "alice's cart", 10*time.Second, func(c hostCart) bool { return c.ID == userID && synced(c) })
	time.Sleep(9 * time.Second) // past two of the tokens' lives
	c := waitCart(tb, "alice's cart, synced", 10*time.Second, func(c hostCart) bool { return synced(c) })
	if c.ID != userID || c.Status == "login" {
		t.Errorf("9 s after a login with 4 s tokens: %s, want alice's cart, synced", c)
	}
	if st := eval[[]string](tb, `window.__statuses`); slices.Contains(st, "login") {
		t.Errorf("the cart's sync statuses were %q: it asked to sign in again", st)
	}
}

// The demo's session is the browser's: a logout in another tab ends it
// here too, and the renewal does not log the shopper back in (it did,
// and their cart came back in every tab).
func TestBrowserDemoRenewalAfterALogoutElsewhere(t *testing.T) {
	srv := startLoginServer(t)
	br, _ := guestWithTee(t, srv)
	one := br.first
	userID := syncserver.UserCartID("alice")
	demoLogIn(one, "alice", "4s")
	waitCart(one, "alice's cart in tab 1", 10*time.Second, func(c hostCart) bool { return c.ID == userID && synced(c) })
	two := demoTab(br, srv, "tab 2")
	waitCart(two, "alice's cart in tab 2", 10*time.Second, func(c hostCart) bool { return c.ID == userID && synced(c) })
	eval[bool](two, `([...document.querySelectorAll('#demo-login button')].find((b) => b.textContent === 'Log out').click(), true)`)
	waitCart(one, "tab 1 logged out", 10*time.Second, func(c hostCart) bool { return strings.HasPrefix(c.ID, "g_") && synced(c) })
	time.Sleep(5 * time.Second) // past tab 1's renewal time
	if c := waitCart(one, "tab 1 synced", 10*time.Second, synced); c.ID == userID {
		t.Errorf("tab 1 after its renewal time: %s, want the guest cart: the renewal logged alice back in", c)
	}
	if who := eval[string](one, `document.querySelector('#demo-login .who')?.textContent || 'signed out'`); who != "signed out" {
		t.Errorf("tab 1's header says %q, want signed out", who)
	}
}

// demoLogIn logs user in with the demo storefront's own form, its tokens
// living ttl (a Go duration).
func demoLogIn(tb *tab, user, ttl string) {
	tb.t.Helper()
	eval[bool](tb, `((user, ttl) => {
		document.getElementById('demo-login').dataset.tokenTtl = ttl;
		document.querySelector('#demo-login select[aria-label="Demo user"]').value = user;
		[...document.querySelectorAll('#demo-login button')].find((b) => b.textContent === 'Log in').click();
		return true;
	})(`+jsArgs([]any{user, ttl})+`)`)
}

// A page that says nobody is signed in (data-signed-in="false") never
// shows the account's cart the device keeps from an earlier page: not in
// the widget's first state, which the page reads at ready (it was shown
// until the 2 s login grace), nor as the count of the button drawn before
// the widget runs.
func TestBrowserSignedOutPageHidesTheAccountsCart(t *testing.T) {
	srv := startLoginServerWith(t, map[string]string{
		"signedout.html": strings.Replace(shopPage, `data-mount="#cart"`, `data-mount="#cart" data-signed-in="false"`, 1),
	})
	br, _ := guestWithTee(t, srv)
	tb := br.first
	loginAs(tb, "alice", "", "merge")
	waitCart(tb, "alice's cart with the tee", 10*time.Second, func(c hostCart) bool {
		return c.ID == syncserver.UserCartID("alice") && synced(c) && len(c.Lines) == 1
	})
	tb.navigate(srv.demo() + "/signedout.html")
	if n := eval[string](tb, `(() => { const s = document.querySelector('.cartsync-shell'); return s && s.shadowRoot ? s.shadowRoot.textContent : 'no shell'; })()`); strings.Contains(n, "1") {
		t.Errorf("the button drawn before the widget runs says %q: the account's count", n)
	}
	first := eval[hostCart](tb, `cartsync.ready`)
	if first.ID == syncserver.UserCartID("alice") || len(first.Lines) != 0 {
		t.Errorf("the signed-out page's first cart is %s, want no account's cart", first)
	}
}

// TestBrowserTabWaitingForLoginFollowsTheOthers: a tab whose login expired
// waits for a new one with an edit queued, and another tab of the device,
// logged in, sends the shared outbox. The waiting tab then shows the edit
// saved, on the cart as stored, instead of "Sign in again to sync — 1
// change waiting" on the cart it had.
func TestBrowserTabWaitingForLoginFollowsTheOthers(t *testing.T) {
	srv := startLoginServer(t)
	userID := syncserver.UserCartID("alice")
	br, _ := guestWithTee(t, srv)
	one := br.first
	two := demoTab(br, srv, "tab 2")
	const ttl = 3 * time.Second
	loginAs(one, "alice", ttl.String(), "merge")
	expires := time.Now().Add(ttl)
	loginAs(two, "alice", "", "merge") // a token of its own, not expiring soon
	first := quantities{"TEE-01": 1}
	for _, tb := range []*tab{one, two} {
		waitCart(tb, "alice's cart in "+tb.name, 10*time.Second, func(c hostCart) bool {
			return c.ID == userID && synced(c) && maps.Equal(c.quantities(), first)
		})
	}
	outlive(one, expires)

	call(one, "add", "NOTE-01", 2)
	want := quantities{"TEE-01": 1, "NOTE-01": 2}
	waitSynced(two, want)
	c := waitCart(one, "tab 1 once tab 2 sent its edit", 10*time.Second, func(c hostCart) bool {
		return c.Pending == 0 && maps.Equal(c.quantities(), want)
	})
	if c.ID != userID || c.Status != "login" {
		t.Errorf("tab 1: %s, want alice's cart, still waiting for a login", c)
	}
}

// TestBrowserKeepTellsOfItemsAddedOffline: items a guest added offline and
// a login with "keep" made offline too reach the account's cart when the
// device is back, as every edit does; the widget and the page's merge
// event say so. (The notice said the device's items were not added.)
func TestBrowserKeepTellsOfItemsAddedOffline(t *testing.T) {
	srv := startLoginServer(t)
	userID := syncserver.UserCartID("carol")
	br, _ := guestWithTee(t, srv)
	tb := br.first
	recordMerges(tb)
	tb.setOffline(true, srv.demo()) // the storefront answers; the cart server does not
	waitStatus(tb, "offline")
	call(tb, "add", "NOTE-01", 2)
	if st := eval[string](tb, `fetch('/demo-token?user=carol')
		.then((r) => r.json()).then((j) => cartsync.login(j.token, {policy: 'keep'})).then((r) => r.status)`); st != "queued" {
		t.Fatalf("cartsync.login offline resolved %q, want queued", st)
	}
	tb.setOffline(false, "")
	want := quantities{"NOTE-01": 2}
	c := waitSynced(tb, want)
	if c.ID != userID {
		t.Fatalf("after the login: %s, want carol's cart with the notes added offline, not the tee", c)
	}
	if ms := waitMerges(tb, 1); ms[0].Policy != "keep" || ms[0].Items != 0 || ms[0].Late != 2 {
		t.Errorf("merge event %+v, want keep with 0 items and 2 late", ms[0])
	}
	eval[bool](tb, `cartsync.open()`)
	waitWidgetText(tb, srv.origin(), "as the merge notice", `document.querySelector('.cartsync-merge')?.textContent`,
		"Your saved cart was kept. The 2 items you had just added on this device were added to it.")
}
