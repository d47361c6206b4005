package main

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"
)

// The browser tests of embed.js's shell: the cart button embed.js draws
// before the widget's WebAssembly runs, with the count this device last
// saw, and the frame created only once the page has loaded and is idle, or
// at the shopper's first interaction.

// watchShell runs in every storefront document of the tab, before its
// scripts: it records the shell as embed.js first draws it (at
// cartsync:load, right after mounting) and the page's layout shifts.
const watchShell = `if (window === window.top) {
	window.__shifts = [];
	new PerformanceObserver((l) => {
		for (const e of l.getEntries()) {
			if (e.hadRecentInput) continue;
			for (const s of e.sources) {
				const n = s.node;
				window.__shifts.push({ node: n ? (n.id || n.className || n.nodeName) : '?', inCart: !!(n && n.closest && n.closest('#cart')), at: e.startTime });
			}
		}
	}).observe({ type: 'layout-shift', buffered: true });
	window.addEventListener('cartsync:load', () => {
		const host = document.querySelector('#cart .cartsync-shell');
		const button = host && host.shadowRoot && host.shadowRoot.querySelector('button');
		const badge = button && button.querySelector('span');
		const r = document.querySelector('#cart .cartsync-embed').getBoundingClientRect();
		window.__shell = {
			label: button ? button.getAttribute('aria-label') : '',
			badge: badge ? badge.textContent : '',
			frame: !!document.querySelector('#cart iframe'),
			box: [r.x, r.y, r.width, r.height],
		};
	});
}`

// shellState is what watchShell recorded.
type shellState struct {
	Label string    `json:"label"`
	Badge string    `json:"badge"`
	Frame bool      `json:"frame"`
	Box   []float64 `json:"box"`
}

const boxJS = `(() => { const r = document.querySelector('#cart .cartsync-embed').getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })()`

// waitShown waits until the frame has replaced the shell.
func waitShown(tb *tab) {
	tb.t.Helper()
	eval[bool](tb, `new Promise((resolve) => {
		const check = () => {
			const f = document.querySelector('#cart iframe');
			if (!document.querySelector('#cart .cartsync-shell') && f && !f.inert && f.style.opacity === '') resolve(true);
			else requestAnimationFrame(check);
		};
		check();
	})`)
}

// TestBrowserEmbedShell loads the demo storefront on a fresh profile: the
// cart button is there at once, labelled "Cart", and the frame is created
// only after the page's load event; once the widget is ready the frame
// takes the shell's place with no layout shift. After three adds and a
// reload, the shell shows the count (3) before the widget runs.
func TestBrowserEmbedShell(t *testing.T) {
	srv := startCartServer(t, repoWeb(t))
	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.addScriptOnNewDocument(watchShell)
	tb.navigate(srv.demo() + "/")
	first := eval[shellState](tb, `window.__shell`)
	if first.Label != "Cart" || first.Badge != "" || first.Frame {
		t.Errorf("the shell on a first visit: %+v, want the label Cart, no badge and no frame yet", first)
	}
	type timing struct {
		Load  float64 `json:"load"`
		Start float64 `json:"start"`
		Ready float64 `json:"ready"`
	}
	c := ready(tb)
	tm := eval[timing](tb, `(() => {
		const m = (n) => performance.getEntriesByName(n)[0].startTime;
		return { load: performance.getEntriesByType('navigation')[0].loadEventEnd, start: m('cartsync:start'), ready: m('cartsync:ready') };
	})()`)
	t.Logf("load event %.0f ms, frame created %.0f ms, ready %.0f ms", tm.Load, tm.Start, tm.Ready)
	if tm.Start < tm.Load {
		t.Errorf("the frame was created at %.0f ms, before the page's load event ended at %.0f ms", tm.Start, tm.Load)
	}
	if c.Items != 0 {
		t.Fatalf("a new shopper's cart: %s", c)
	}
	waitShown(tb)
	if got := eval[[]float64](tb, boxJS); !equalFloats(got, first.Box) {
		t.Errorf("the cart's box moved or changed size from the shell %v to the widget %v", first.Box, got)
	}
	// The demo storefront's own parts may move (its script draws its
	// login bar and the cart's status); the cart must not.
	type shift struct {
		Node   string  `json:"node"`
		InCart bool    `json:"inCart"`
		At     float64 `json:"at"`
	}
	for _, s := range eval[[]shift](tb, `window.__shifts`) {
		if s.InCart {
			t.Errorf("layout shift of %q at %.0f ms (ready at %.0f ms): the cart moved", s.Node, s.At, tm.Ready)
		} else {
			t.Logf("layout shift of the demo's %q at %.0f ms", s.Node, s.At)
		}
	}

	call(tb, "add", "TEE-01", 2)
	call(tb, "add", "MUG-01", 1)
	key := "cartsync:shell:" + srv.origin()
	if got := eval[int](tb, `JSON.parse(localStorage.getItem(`+jsArgs([]any{key})+`)).items`); got != 3 {
		t.Errorf("the count kept in localStorage: %d, want 3", got)
	}
	tb.reload()
	again := eval[shellState](tb, `window.__shell`)
	if again.Label != "Cart, 3 items" || again.Badge != "3" || again.Frame {
		t.Errorf("the shell of a returning shopper: %+v, want the label \"Cart, 3 items\", the badge 3 and no frame yet", again)
	}
	if c := ready(tb); c.Items != 3 {
		t.Errorf("the widget's cart after the reload: %s", c)
	}
	waitShown(tb)
	if got := eval[[]float64](tb, boxJS); !equalFloats(got, again.Box) {
		t.Errorf("after the reload the cart's box went from %v to %v", again.Box, got)
	}
}

// noIdle stands for a storefront page that is never idle: the frame is
// created only when the shopper or the page needs the widget.
const noIdle = `if (window === window.top) { window.requestIdleCallback = () => 0; window.cancelIdleCallback = () => {}; }`

// TestBrowserEmbedShellInteraction: on a page that is never idle, nothing
// of the widget loads until the shopper clicks the shell's cart button,
// which starts the widget and opens its panel as soon as it is ready;
// focusing the button starts the widget too, and the focus follows it into
// the frame when it takes the shell's place.
func TestBrowserEmbedShellInteraction(t *testing.T) {
	srv := startCartServer(t, repoWeb(t))
	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.addScriptOnNewDocument(noIdle)
	tb.addScriptOnNewDocument(watchShell)
	tb.navigate(srv.demo() + "/")
	eval[shellState](tb, `window.__shell`) // embed.js has mounted
	if eval[bool](tb, `!!document.querySelector('#cart iframe') || performance.getEntriesByName('cartsync:start').length > 0`) {
		t.Fatal("the frame was created on a page that was never idle, before any interaction")
	}
	if eval[bool](tb, `(() => {
		const b = document.querySelector('#cart .cartsync-shell').shadowRoot.querySelector('button');
		return b.type !== 'button' || b.getAttribute('aria-haspopup') !== 'dialog' || b.getAttribute('aria-expanded') !== 'false';
	})()`) {
		t.Error("the shell's button is not a button that opens a dialog")
	}

	// A real click in the middle of the shell's button.
	expectEvent(tb, "open", "__opened")
	xy := eval[[]float64](tb, `(() => { const r = document.querySelector('#cart .cartsync-shell').getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`)
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.MouseClickXY(xy[0], xy[1])); err != nil {
		t.Fatal(err)
	}
	eval[bool](tb, `window.__opened`)
	waitShown(tb)
	if !eval[bool](tb, `(() => {
		const f = document.querySelector('#cart iframe'), r = f.getBoundingClientRect();
		return f.style.position === 'fixed' && r.top === 0 && Math.abs(r.right - document.documentElement.clientWidth) <= 1 &&
			document.activeElement === f;
	})()`) {
		t.Error("after a click on the shell: want the panel open at the top right of the window with the focus in it")
	}
	eval[bool](tb, `cartsync.close()`)

	// Focus alone starts the widget: no call, no click.
	tb.reload()
	eval[shellState](tb, `window.__shell`)
	if eval[bool](tb, `!!document.querySelector('#cart iframe')`) {
		t.Fatal("the frame was created before any interaction")
	}
	eval[bool](tb, `(document.querySelector('#cart .cartsync-shell').shadowRoot.querySelector('button').focus(), true)`)
	ready(tb)
	waitShown(tb)
	if !eval[bool](tb, `document.activeElement === document.querySelector('#cart iframe')`) {
		t.Error("the focus did not follow from the shell's button into the widget's frame")
	}
	if eval[bool](tb, `document.querySelector('#cart iframe').style.position === 'fixed'`) {
		t.Error("focusing the shell opened the panel")
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if d := a[i] - b[i]; d > 0.5 || d < -0.5 {
			return false
		}
	}
	return true
}
