package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// The widget on phones, with the keyboard and with screen readers: the
// demo storefront at 320 px, a keyboard-only walkthrough of the panel, the
// undo of a removal, and what the live region says.

const (
	teeM     = "TEE-01?size=M"
	a11yMug  = "MUG-01"
	liveText = `(document.getElementById('cartsync-live')?.textContent || '').replace(/\u00a0$/, '')`
)

// fillCart adds 2 tees (size M) and a mug, with their details.
func fillCart(tb *tab) {
	tb.t.Helper()
	call(tb, "add", "TEE-01", 2, map[string]any{"name": "Tee", "price": 1999, "currency": "EUR", "options": map[string]string{"size": "M"}})
	call(tb, "add", a11yMug, 1, map[string]any{"name": "Mug", "price": 1200, "currency": "EUR"})
}

// setViewport sizes the tab's viewport and waits for the page to lay itself
// out again.
func setViewport(tb *tab, width, height int64) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height))
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Evaluate[bool](`new Promise((r) => setTimeout(() => requestAnimationFrame(() => r(true)), 300))`, chromedp.EvalAwaitPromise))
	}
	if err != nil {
		tb.t.Fatalf("%s: viewport %d × %d: %v", tb.name, width, height, err)
	}
}

// waitWidget polls the boolean expression expr in the widget until it
// holds.
func waitWidget(tb *tab, cartOrigin, what, expr string) {
	tb.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !evalInWidget[bool](tb, cartOrigin, expr) {
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: timed out waiting for %s (%s); focus: %+v", tb.name, what, expr, widgetFocus(tb, cartOrigin))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// focusState is where the focus is in the widget's frame.
type focusState struct {
	ID      string `json:"id"`
	Name    string `json:"name"` // aria-label, else the text
	InPanel bool   `json:"inPanel"`
	Ring    bool   `json:"ring"` // :focus-visible with an outline
	Frame   bool   `json:"frame"`
}

func widgetFocus(tb *tab, cartOrigin string) focusState {
	tb.t.Helper()
	return evalInWidget[focusState](tb, cartOrigin, `(() => {
		const a = document.activeElement, p = document.getElementById('cartsync-panel');
		if (!a) return {};
		const s = getComputedStyle(a);
		return {
			id: a.id, name: (a.getAttribute('aria-label') || a.textContent || '').trim(),
			inPanel: !!p && p.contains(a),
			ring: a.matches(':focus-visible') && s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2,
			frame: document.hasFocus(),
		};
	})()`)
}

// focusAt says where the focus is, in the host page and in the widget's
// frame: each element by its place in its document, so that two alike
// (the shop's Add buttons) still differ.
func focusAt(tb *tab, cartOrigin string) string {
	tb.t.Helper()
	const at = `(() => { const a = document.activeElement; return document.hasFocus() + ':' + [...document.querySelectorAll('*')].indexOf(a); })()`
	return eval[string](tb, at) + " " + evalInWidget[string](tb, cartOrigin, at)
}

// pressTab presses Tab (Shift+Tab with back) and waits for the focus to
// move.
func pressTab(tb *tab, cartOrigin string, back bool) {
	tb.t.Helper()
	before := focusAt(tb, cartOrigin)
	press(tb, kb.Tab, back)
	deadline := time.Now().Add(10 * time.Second)
	for focusAt(tb, cartOrigin) == before {
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: the focus did not move on Tab; focus: %+v", tb.name, widgetFocus(tb, cartOrigin))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// press sends a key to the focused element of the tab, with Shift if
// shift is set. What the key does may come later (the widget handles
// Enter and Escape on its UI goroutine): wait for it.
func press(tb *tab, key string, shift bool) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	var opts []chromedp.KeyOption
	if shift {
		opts = append(opts, chromedp.KeyModifiers(chromedp.ModifierShift))
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent(key, opts...)); err != nil {
		tb.t.Fatalf("%s: press %q: %v", tb.name, key, err)
	}
}

// tabTo presses Tab until the focus is on the widget's element matching
// ok (a JavaScript predicate of the active element), at most n times.
func tabTo(tb *tab, cartOrigin, what, ok string, n int) {
	tb.t.Helper()
	for range n {
		pressTab(tb, cartOrigin, false)
		if evalInWidget[bool](tb, cartOrigin, `(() => { const a = document.activeElement; return !!a && document.hasFocus() && (`+ok+`)(a); })()`) {
			return
		}
	}
	tb.t.Fatalf("%s: %d presses of Tab did not reach %s; focus: %+v", tb.name, n, what, widgetFocus(tb, cartOrigin))
}

// checkTargets checks the open panel at the tab's width: the frame fills the
// viewport's width (up to the panel's 420 px) and height, nothing
// overflows sideways, and every button is inside the panel and at least
// 44 × 44 px.
func checkTargets(tb *tab, cartOrigin string, width int) {
	tb.t.Helper()
	frame := eval[[]int](tb, `(() => {
		const r = document.querySelector('iframe').getBoundingClientRect();
		const d = document.documentElement;
		return [Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height), d.clientWidth, d.clientHeight];
	})()`)
	// The viewport's width without its scrollbar: phones have none.
	if want := min(frame[4], 420); frame[2] != want || frame[1] != 0 || frame[3] != frame[5] || frame[0]+frame[2] != frame[4] {
		tb.t.Errorf("at %d px the open frame is at %d,%d, %d × %d, want %d wide and the viewport's height %d at the right", width, frame[0], frame[1], frame[2], frame[3], want, frame[5])
	}
	got := evalInWidget[struct {
		Overflow int      `json:"overflow"`
		Page     int      `json:"page"`
		Outside  []string `json:"outside"`
		Small    []string `json:"small"`
	}](tb, cartOrigin, `(() => {
		const p = document.getElementById('cartsync-panel');
		const r = p.getBoundingClientRect();
		const out = { overflow: p.scrollWidth - p.clientWidth, page: document.documentElement.scrollWidth - innerWidth, outside: [], small: [] };
		for (const b of p.querySelectorAll('button')) {
			const q = b.getBoundingClientRect();
			const name = b.getAttribute('aria-label') || b.textContent;
			if (q.left < r.left - 0.5 || q.right > r.right + 0.5) out.outside.push(name);
			if (q.width < 43.5 || q.height < 43.5) out.small.push(name + ' ' + Math.round(q.width) + '×' + Math.round(q.height));
		}
		return out;
	})()`)
	if got.Overflow > 0 || got.Page > 0 || len(got.Outside) > 0 || len(got.Small) > 0 {
		tb.t.Errorf("at %d px the panel overflows by %d px (the frame's page by %d); outside: %q; smaller than 44 × 44: %q", width, got.Overflow, got.Page, got.Outside, got.Small)
	}
}

// TestBrowserA11yNarrowViewport: at 320 and 375 px the demo storefront does
// not scroll sideways and the cart button is on screen; the open panel
// fills the screen, nothing in it overflows, and every button is at least
// 44 px. Screenshots at 320, 375 and 1280 px.
func TestBrowserA11yNarrowViewport(t *testing.T) {
	srv := startCartServer(t, repoWeb(t))
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/")
	ready(tb)
	fillCart(tb)
	waitSynced(tb, quantities{teeM: 2, a11yMug: 1})

	for _, page := range []string{"/", "/admin.html", "/webhooks.html", "/checkout.html"} {
		tb.navigate(srv.demo() + page)
		if page == "/" {
			ready(tb)
		}
		for _, width := range []int64{320, 375} {
			setViewport(tb, width, 640)
			if over := eval[int](tb, `document.documentElement.scrollWidth - innerWidth`); over > 0 {
				t.Errorf("%s at %d px: the page is %d px wider than the screen", page, width, over)
			}
		}
	}
	tb.navigate(srv.demo() + "/")
	ready(tb)
	for _, width := range []int64{320, 375, 1280} {
		h := int64(640)
		if width > 1000 {
			h = 800
		}
		setViewport(tb, width, h)
		button := eval[[]float64](tb, `(() => {
			const r = document.querySelector('iframe').getBoundingClientRect();
			return [r.left, r.top, r.right, r.bottom, innerWidth, innerHeight];
		})()`)
		if button[0] < 0 || button[1] < 0 || button[2] > button[4] || button[3] > button[5] || button[2]-button[0] < 44 {
			t.Errorf("at %d px the cart button's frame is at %v, not wholly on the %v × %v screen", width, button[:4], button[4], button[5])
		}
		screenshot(tb, width, h, fmt.Sprintf("a11y-closed-%d.png", width))
		eval[bool](tb, `cartsync.open()`)
		waitWidget(tb, srv.origin(), "the open panel", `!!document.querySelector('.cartsync-line')`)
		screenshot(tb, width, h, fmt.Sprintf("a11y-%d.png", width))
		checkTargets(tb, srv.origin(), int(width))
		eval[bool](tb, `cartsync.close()`)
	}
	// The removal question and the undo toast at 320 px.
	setViewport(tb, 320, 640)
	eval[bool](tb, `cartsync.open()`)
	clickWidget(tb, srv.origin(), `.cartsync-line:nth-child(2) .cartsync-step`, "−")
	waitWidget(tb, srv.origin(), "the removal question", `!!document.querySelector('.cartsync-confirm')`)
	checkTargets(tb, srv.origin(), 320)
	screenshot(tb, 320, 640, "a11y-confirm-320.png")
	clickWidget(tb, srv.origin(), `.cartsync-confirm-remove`, "")
	waitWidget(tb, srv.origin(), "the undo toast", `!!document.getElementById('cartsync-undo')`)
	checkTargets(tb, srv.origin(), 320)
	screenshot(tb, 320, 640, "a11y-undo-320.png")
	eval[bool](tb, `cartsync.close()`)

	// A long cart on a phone, scrolled to its end: the head with the
	// close button stays on screen, and every line's buttons Tab reaches
	// are brought up clear of the sticky head and foot.
	for i := range 6 {
		call(tb, "add", fmt.Sprintf("LONG-%02d", i), 1, map[string]any{"name": fmt.Sprintf("Item %d", i), "price": 500, "currency": "EUR"})
	}
	setViewport(tb, 375, 640)
	eval[bool](tb, `cartsync.open()`)
	waitWidget(tb, srv.origin(), "the long cart", `document.querySelectorAll('.cartsync-line').length >= 7`)
	evalInWidget[bool](tb, srv.origin(), `(() => { const p = document.getElementById('cartsync-panel'); p.scrollTop = p.scrollHeight; return true; })()`)
	screenshot(tb, 375, 640, "a11y-long-scrolled-375.png")
	if top := evalInWidget[float64](tb, srv.origin(), `document.querySelector('.cartsync-close').getBoundingClientRect().top`); top < 0 {
		t.Errorf("scrolled to the end of a long cart, the close button is %v px above the screen", -top)
	}
	hidden := evalInWidget[[]string](tb, srv.origin(), `(() => {
		const p = document.getElementById('cartsync-panel');
		const head = document.querySelector('.cartsync-head').getBoundingClientRect();
		const foot = document.querySelector('.cartsync-foot').getBoundingClientRect();
		const out = [];
		for (const b of document.querySelectorAll('.cartsync-line button')) {
			b.focus();
			const r = b.getBoundingClientRect();
			if (r.top < head.bottom - 1 || r.bottom > foot.top + 1) out.push(b.getAttribute('aria-label') || b.textContent);
		}
		return out;
	})()`)
	if len(hidden) > 0 {
		t.Errorf("focused, these buttons stay under the sticky head or foot: %q", hidden)
	}
}

// TestBrowserA11yKeyboard is a keyboard-only walkthrough: Tab reaches the
// cart button, Enter opens the dialog with the focus in it, Tab stays in
// it, Escape closes the removal question only, then the panel, and the
// focus returns to the button. Remove moves the focus to the next line with
// a visible ring and offers Undo, which restores the line. The live region
// tells an add made while the panel is closed, going offline and coming
// back.
func TestBrowserA11yKeyboard(t *testing.T) {
	srv := startCartServer(t, repoWeb(t))
	tb := startBrowser(t, t.TempDir()).first
	origin := srv.origin()
	tb.navigate(srv.demo() + "/")
	ready(tb)
	fillCart(tb)
	waitSynced(tb, quantities{teeM: 2, a11yMug: 1})

	// The live region, panel closed: an add from the page.
	call(tb, "add", a11yMug, 1, map[string]any{"name": "Mug", "price": 1200, "currency": "EUR"})
	waitWidget(tb, origin, "the add announced", liveText+` === 'Added Mug. 4 items in cart.'`)
	if n := evalInWidget[int](tb, origin, `document.querySelectorAll('[aria-live], [role=status], [role=alert]').length`); n != 1 {
		t.Errorf("%d live regions in the closed widget, want 1", n)
	}

	// Tab to the button, Enter opens, the focus is on the dialog.
	tabTo(tb, origin, "the cart button", `(a) => a.id === 'cartsync-button'`, 40)
	press(tb, kb.Enter, false)
	waitWidget(tb, origin, "the focus on the dialog", `document.activeElement?.id === 'cartsync-panel' && document.hasFocus()`)
	dialog := evalInWidget[[]string](tb, origin, `(() => {
		const p = document.getElementById('cartsync-panel');
		return [p.getAttribute('role'), p.getAttribute('aria-modal'), document.getElementById(p.getAttribute('aria-labelledby'))?.textContent || ''];
	})()`)
	if strings.Join(dialog, "|") != "dialog|true|Your cart" {
		t.Errorf("the focused panel: role, aria-modal, name = %q, want dialog, true, Your cart", dialog)
	}
	if n := evalInWidget[int](tb, origin, `document.querySelectorAll('#cartsync-panel [aria-live], #cartsync-panel [role=status]').length`); n != 0 {
		t.Errorf("%d live regions in the open panel, want none", n)
	}

	// Tab and Shift+Tab stay in the dialog.
	n := evalInWidget[int](tb, origin, `document.querySelectorAll('#cartsync-panel button').length`)
	for i := range n + 2 {
		pressTab(tb, origin, i%3 == 2)
		if f := widgetFocus(tb, origin); !f.InPanel || !f.Frame {
			t.Fatalf("after %d presses of Tab the focus left the dialog: %+v", i+1, f)
		}
	}

	// Escape on the removal question closes the question only.
	tabTo(tb, origin, "the mug's Decrease button", `(a) => a.getAttribute('aria-label') === 'Decrease quantity of Mug'`, n+2)
	press(tb, kb.Enter, false) // 2 mugs: 1
	waitWidget(tb, origin, "1 mug", `[...document.querySelectorAll('.cartsync-qty')].map((q) => q.textContent).join() === '2,1'`)
	press(tb, kb.Enter, false) // the question
	waitWidget(tb, origin, "the focus on Keep", `document.activeElement?.id === 'cartsync-keep'`)
	press(tb, kb.Escape, false)
	waitWidget(tb, origin, "the question closed", `!document.querySelector('.cartsync-confirm')`)
	if f := widgetFocus(tb, origin); !f.InPanel || f.Name != "Decrease quantity of Mug" {
		t.Errorf("after Escape on the question the focus is on %+v, want the mug's Decrease button in the open panel", f)
	}

	// Remove the tee: the focus goes to the mug's Remove button, with a
	// ring; the removal is told, and Undo puts the tee back as it was.
	tabTo(tb, origin, "the tee's Remove button", `(a) => a.getAttribute('aria-label') === 'Remove Tee from cart'`, n+2)
	press(tb, kb.Enter, false)
	waitCart(tb, "the tee removed", 10*time.Second, func(c hostCart) bool { _, ok := c.quantities()[teeM]; return !ok })
	waitWidget(tb, origin, "the focus on the mug's Remove button", `document.activeElement?.getAttribute('aria-label') === 'Remove Mug from cart'`)
	if f := widgetFocus(tb, origin); !f.Ring {
		t.Errorf("after Remove the focus is on %+v without a visible ring", f)
	}
	if got := evalInWidget[string](tb, origin, liveText); !strings.HasPrefix(got, "Removed Tee.") {
		t.Errorf("the live region says %q after Remove, want Removed Tee. …", got)
	}
	if got := widgetText(tb, origin, ".cartsync-undo p"); got != "Removed Tee." {
		t.Errorf("the undo toast says %q", got)
	}
	tabTo(tb, origin, "Undo", `(a) => a.id === 'cartsync-undo'`, n+2)
	press(tb, kb.Enter, false)
	c := waitCart(tb, "the tee back", 10*time.Second, func(c hostCart) bool { return c.quantities()[teeM] == 2 })
	for _, l := range c.Lines {
		if l.Key == teeM && (l.Details.Name != "Tee" || l.Details.Price != 1999 || l.Options["size"] != "M") {
			t.Errorf("the tee after Undo: %+v, want its name, price and size back", l)
		}
	}
	waitWidget(tb, origin, "the focus on the tee's Remove button", `document.activeElement?.getAttribute('aria-label') === 'Remove Tee from cart'`)
	waitSynced(tb, quantities{teeM: 2, a11yMug: 1})

	// Escape closes the panel; the focus is back on the cart button.
	press(tb, kb.Escape, false)
	waitWidget(tb, origin, "the panel closed", `!document.getElementById('cartsync-panel')`)
	waitWidget(tb, origin, "the focus on the cart button", `document.activeElement?.id === 'cartsync-button' && document.hasFocus()`)
	if f := widgetFocus(tb, origin); !f.Ring {
		t.Errorf("after Escape the cart button has the focus without a visible ring: %+v", f)
	}

	// The close button, by keyboard and by mouse, closes the panel the
	// same way: the focus back on the cart button and the frame on the
	// host page back to the button's size, so the page takes clicks again.
	// Review and Back move the focus to the step's title.
	for _, how := range []string{"keyboard", "mouse"} {
		press(tb, kb.Enter, false)
		waitWidget(tb, origin, "the panel open", `document.activeElement?.id === 'cartsync-panel'`)
		waitHost(tb, "the frame covering the page", `document.querySelector('iframe').style.position === 'fixed'`)
		if how == "keyboard" {
			tabTo(tb, origin, "Review order", `(a) => a.textContent === 'Review order'`, n+2)
			press(tb, kb.Enter, false)
			waitWidget(tb, origin, "the focus on the review's title", `document.activeElement?.id === 'cartsync-title' && document.querySelector('.cartsync-review') !== null`)
			tabTo(tb, origin, "Back", `(a) => a.textContent === 'Back'`, n+2)
			press(tb, kb.Enter, false)
			waitWidget(tb, origin, "the focus on the cart's title", `document.activeElement?.id === 'cartsync-title' && document.querySelector('.cartsync-review') === null`)
			tabTo(tb, origin, "the close button", `(a) => a.getAttribute('aria-label') === 'Close cart'`, n+2)
			press(tb, kb.Enter, false)
		} else {
			clickWidget(tb, origin, ".cartsync-close", "")
		}
		waitWidget(tb, origin, "the panel closed by "+how, `!document.getElementById('cartsync-panel')`)
		waitWidget(tb, origin, "the focus on the cart button after "+how, `document.activeElement?.id === 'cartsync-button'`)
		waitHost(tb, "the frame back to the button's size after "+how, `document.querySelector('iframe').style.position !== 'fixed'`)
	}

	// The live region, panel closed: going offline and coming back are
	// told once each.
	tb.setOffline(true, "")
	waitWidget(tb, origin, "offline told", liveText+` === `+jsArgs([]any{"Offline. Your changes are kept and sent when you're back online."}))
	tb.setOffline(false, "")
	waitWidget(tb, origin, "back online told", liveText+` === 'Back online.'`)
}

// recordLive has the widget's frame in tb keep every text its live region
// says from now on (liveSaid reads them).
func recordLive(tb *tab, cartOrigin string) {
	tb.t.Helper()
	evalInWidget[bool](tb, cartOrigin, `(window.__said = [], new MutationObserver(() => window.__said.push(`+liveText+`)).observe(document.getElementById('cartsync-live'), {childList: true, characterData: true, subtree: true}), true)`)
}

// liveSaid is what the live region said since recordLive.
func liveSaid(tb *tab, cartOrigin string) []string {
	tb.t.Helper()
	return evalInWidget[[]string](tb, cartOrigin, `window.__said`)
}

// waitHost waits until expr, run in the host page, is true.
func waitHost(tb *tab, what, expr string) {
	tb.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !eval[bool](tb, expr) {
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: waiting for %s: %s is still false", tb.name, what, expr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// On a phone, a line removed far down a long cart offers Undo where the
// shopper is: in the panel's foot, which stays on screen while the lines
// scroll.
func TestBrowserUndoInViewOnAPhone(t *testing.T) {
	srv := startCommerceServer(t)
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/shop.html")
	ready(tb)
	for i := range 6 {
		call(tb, "add", fmt.Sprintf("LINE-%d", i), 1, map[string]any{"name": fmt.Sprintf("Line %d", i), "price": 1000, "currency": "EUR"})
	}
	waitSynced(tb, quantities{"LINE-0": 1, "LINE-1": 1, "LINE-2": 1, "LINE-3": 1, "LINE-4": 1, "LINE-5": 1})
	eval[bool](tb, `cartsync.open()`)
	screenshot(tb, 375, 667, "undo-before-375.png")
	evalInWidget[bool](tb, srv.origin(), `(document.querySelector('.cartsync-panel').scrollTop = 1e6, true)`)
	clickWidget(tb, srv.origin(), `[aria-label="Remove Line 4 from cart"]`, "")
	waitWidget(tb, srv.origin(), "the undo", `!!document.getElementById('cartsync-undo')`)
	shot := screenshot(tb, 375, 667, "undo-after-375.png")
	inView := evalInWidget[bool](tb, srv.origin(), `(() => {
		const r = document.getElementById('cartsync-undo').getBoundingClientRect();
		return r.top >= 0 && r.bottom <= window.innerHeight && r.height >= 44;
	})()`)
	if !inView {
		t.Errorf("Undo is not fully on screen after removing a line far down the cart (see %s)", shot)
	}
	// Undo puts the line back where it was, on the server too (the cart
	// once synced is the server's), not at the end of the cart.
	clickWidget(tb, srv.origin(), `#cartsync-undo`, "")
	waitSynced(tb, quantities{"LINE-0": 1, "LINE-1": 1, "LINE-2": 1, "LINE-3": 1, "LINE-4": 1, "LINE-5": 1})
	var order []string
	for _, l := range call(tb, "cart").Lines {
		order = append(order, l.SKU)
	}
	if fmt.Sprint(order) != "[LINE-0 LINE-1 LINE-2 LINE-3 LINE-4 LINE-5]" {
		t.Errorf("lines after Undo: %v, want Line 4 back in its place", order)
	}
	shown := evalInWidget[[]string](tb, srv.origin(), `[...document.querySelectorAll('.cartsync-lines .cartsync-name')].map((e) => e.textContent)`)
	if fmt.Sprint(shown) != "[Line 0 Line 1 Line 2 Line 3 Line 4 Line 5]" {
		t.Errorf("the panel shows %v after Undo, want Line 4 back in its place", shown)
	}
}

// A phone on its side (640 × 360, and 320 × 200 as at 400 % zoom): the
// panel's head and foot scroll with the lines, but Undo stays on screen
// after removing the first line of a long cart, and the last line can
// still be scrolled clear of it.
func TestBrowserUndoInViewOnAPhoneOnItsSide(t *testing.T) {
	srv := startCommerceServer(t)
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/shop.html")
	ready(tb)
	want := quantities{}
	for i := range 8 {
		sku := fmt.Sprintf("LINE-%d", i)
		call(tb, "add", sku, 1, map[string]any{"name": fmt.Sprintf("Line %d", i), "price": 1000, "currency": "EUR"})
		want[sku] = 1
	}
	waitSynced(tb, want)
	eval[bool](tb, `cartsync.open()`)
	for _, vp := range []struct {
		w, h int64
		line string
		shot string
	}{{640, 360, "Line 0", "undo-640x360.png"}, {320, 200, "Line 1", "undo-320x200.png"}} {
		setViewport(tb, vp.w, vp.h)
		evalInWidget[bool](tb, srv.origin(), `(document.querySelector('.cartsync-panel').scrollTop = 0, true)`)
		clickWidget(tb, srv.origin(), `[aria-label="Remove `+vp.line+` from cart"]`, "")
		waitWidget(tb, srv.origin(), "the undo", `!!document.getElementById('cartsync-undo')`)
		shot := screenshot(tb, vp.w, vp.h, vp.shot)
		inView := evalInWidget[bool](tb, srv.origin(), `(() => {
			const r = document.getElementById('cartsync-undo').getBoundingClientRect();
			return r.top >= 0 && r.bottom <= window.innerHeight && r.height >= 44;
		})()`)
		if !inView {
			t.Errorf("%d × %d: Undo is not fully on screen after removing %s at the top of the cart (see %s)", vp.w, vp.h, vp.line, shot)
		}
		clear := evalInWidget[bool](tb, srv.origin(), `(() => {
			const p = document.querySelector('.cartsync-panel');
			p.scrollTop = 1e6;
			const last = [...document.querySelectorAll('.cartsync-lines .cartsync-remove')].pop().getBoundingClientRect();
			return last.bottom <= document.querySelector('.cartsync-undo').getBoundingClientRect().top;
		})()`)
		if !clear {
			t.Errorf("%d × %d: the last line's Remove stays under Undo when scrolled to the end (see %s)", vp.w, vp.h, shot)
		}
	}
}

// In forced colours (Windows High Contrast) the cart button still shows
// its icon and an outline; at 400 % zoom (320 × 200 CSS px) the panel's
// head and foot scroll with the lines, which would otherwise have no room.
func TestBrowserForcedColorsAndShortViewport(t *testing.T) {
	srv := startCommerceServer(t)
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/shop.html")
	ready(tb)
	call(tb, "add", "LINE-1", 1, map[string]any{"name": "Line 1", "price": 1000, "currency": "EUR"})
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "forced-colors", Value: "active"}}}); err != nil {
		t.Fatal(err)
	}
	shot := screenshot(tb, 1280, 800, "forced-colors-closed.png")
	seen := evalInWidget[map[string]string](tb, srv.origin(), `(() => {
		const b = getComputedStyle(document.querySelector('.cartsync-button'));
		const i = getComputedStyle(document.querySelector('.cartsync-icon'));
		return {button: b.backgroundColor, icon: i.backgroundColor, border: b.borderTopWidth + ' ' + b.borderTopStyle};
	})()`)
	if seen["icon"] == seen["button"] || seen["border"] == "0px none" {
		t.Errorf("forced colours: %v; want the icon in another colour than the button, and a border (see %s)", seen, shot)
	}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "forced-colors", Value: "none"}}}); err != nil {
		t.Fatal(err)
	}

	eval[bool](tb, `cartsync.open()`)
	shot = screenshot(tb, 320, 200, "zoom-400.png")
	room := evalInWidget[map[string]any](tb, srv.origin(), `(() => {
		const foot = document.querySelector('.cartsync-foot'), head = document.querySelector('.cartsync-head');
		return {foot: getComputedStyle(foot).position, head: getComputedStyle(head).position};
	})()`)
	if room["foot"] != "static" || room["head"] != "static" {
		t.Errorf("at 320 × 200: %v; want the head and the foot to scroll with the lines (see %s)", room, shot)
	}
}

// While the panel is open, the host page around it is inert (out of reach
// of screen readers' browse mode, the keyboard and the pointer); closing
// gives it back as it was, an element the page had made inert itself
// included.
func TestBrowserHostPageInertWhileOpen(t *testing.T) {
	srv := startCommerceServer(t)
	tb := startBrowser(t, t.TempDir()).first
	tb.navigate(srv.demo() + "/shop.html")
	ready(tb)
	eval[bool](tb, `(() => {
		const p = document.createElement('p');
		p.id = 'pages-own';
		p.inert = true;
		document.body.append(p);
		return true;
	})()`)
	const state = `new Promise((resolve) => setTimeout(() => resolve({
		h1: document.querySelector('h1').inert,
		own: document.getElementById('pages-own').inert,
		cart: document.getElementById('cart').inert,
	}), 300))`
	eval[bool](tb, `cartsync.open()`)
	if got := eval[map[string]bool](tb, state); !got["h1"] || !got["own"] || got["cart"] {
		t.Errorf("open: %v; want the page's heading inert, its own inert element still inert, the mount element not", got)
	}
	eval[bool](tb, `cartsync.close()`)
	if got := eval[map[string]bool](tb, state); got["h1"] || !got["own"] || got["cart"] {
		t.Errorf("closed: %v; want the heading back, the page's own inert element still inert", got)
	}
	eval[bool](tb, `cartsync.open()`)
	eval[map[string]bool](tb, state)
	eval[bool](tb, `(cartsync.destroy(), true)`)
	if got := eval[map[string]bool](tb, `({h1: document.querySelector('h1').inert})`); got["h1"] {
		t.Errorf("after destroy() while open: %v; want the heading back", got)
	}
}
