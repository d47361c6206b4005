package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The axe-core accessibility checks: the demo storefront with the widget in
// its frame, in each state the widget can be in, checked by axe-core
// (installed by scripts/install-deps.sh) against WCAG 2.1 A and AA and
// axe's best practices, from the storefront's page through the widget's
// frame as axe checks a page with iframes.

// axeVersion is the axe-core that scripts/install-deps.sh installs.
const axeVersion = "4.14.1"

// axeTags are the rules axe runs: WCAG 2.0 and 2.1, levels A and AA, and
// axe's best practices.
var axeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"}

// axeSource returns axe.min.js from .tools/axe-core/. Without it the test
// is skipped, or fails where the services are required (CI).
func axeSource(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs("../../../.tools/axe-core/node_modules/axe-core/axe.min.js")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		msg := fmt.Sprintf("no axe-core at %s: run scripts/install-deps.sh (it runs npm install --prefix .tools/axe-core axe-core@%s --no-audit --no-fund)", path, axeVersion)
		if os.Getenv("CI") != "" || os.Getenv("CARTSYNC_REQUIRE_SERVICES") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// axeViolation is one rule axe found broken, with the nodes that break it.
type axeViolation struct {
	ID      string    `json:"id"`
	Impact  string    `json:"impact"`
	Help    string    `json:"help"`
	HelpURL string    `json:"helpUrl"`
	Nodes   []axeNode `json:"nodes"`
}

type axeNode struct {
	// Target is the node's selector; a node in the widget's frame is
	// "the iframe's selector >>> its selector in the frame".
	Target  string `json:"target"`
	HTML    string `json:"html"`
	Summary string `json:"summary"`
}

func (v axeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s\n    %s", v.ID, v.Impact, v.Help, v.HelpURL)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n    - %s\n      %s\n      %s", n.Target, n.HTML, strings.ReplaceAll(n.Summary, "\n", "\n      "))
	}
	return b.String()
}

// axeResults is what one run of axe found.
type axeResults struct {
	Version    string         `json:"version"`
	Violations []axeViolation `json:"violations"`
	Passes     int            `json:"passes"`   // rules that passed
	Frames     int            `json:"frames"`   // passed nodes inside the widget's frame
	Contrast   int            `json:"contrast"` // of which passed the colour contrast rule
	// Incomplete are the rules axe could not decide on a node, each
	// with its nodes, for a person to review.
	Incomplete []string `json:"incomplete"`
}

// axeChecker runs axe-core in a tab of the demo storefront and its widget.
type axeChecker struct {
	t      *testing.T
	tb     *tab
	origin string // the cart server's
	demo   string // the storefront's
	src    string // axe.min.js
}

// inject loads axe into the document of the context inContext ("" for the
// page) unless it is there, and returns its version.
func (a *axeChecker) inject(inContext string) (string, error) {
	const version = `typeof axe === 'object' ? axe.version : ''`
	if v, err := tryEval[string](a.tb, inContext, version); err != nil || v != "" {
		return v, err
	}
	return tryEval[string](a.tb, inContext, a.src+"\n;"+version)
}

// waitButton waits for the widget's cart button in a page just loaded. The
// widget's first load (its wasm compiled on a busy machine) may take
// longer than evalInWidget waits for the frame.
func (a *axeChecker) waitButton() {
	a.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if id, ok := a.tb.frameContext(a.origin); ok {
			if v, err := tryEval[bool](a.tb, id, `!!document.getElementById('cartsync-button')`); err == nil && v {
				return
			}
		}
		if time.Now().After(deadline) {
			a.t.Fatal("the widget's cart button did not show within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settle waits until no animation runs in the widget's frame (the panel
// slides and fades in), so that axe sees the colours as they stay.
func (a *axeChecker) settle() {
	a.t.Helper()
	waitWidget(a.tb, a.origin, "the widget's animations to finish",
		`document.getAnimations().every((x) => x.playState !== 'running' && !x.pending)`)
}

// run checks the page and the widget's frame in the state named state and
// returns what axe found.
func (a *axeChecker) run(state string) axeResults {
	a.t.Helper()
	a.settle()
	id, ok := a.tb.frameContext(a.origin)
	if !ok {
		a.t.Fatalf("%s: the widget's frame has no document", state)
	}
	// axe talks to the axe of another origin's frame only if told to.
	allow := `axe.configure({ allowedOrigins: ` + jsArgs([]any{[]string{a.demo, a.origin}}) + ` }), true`
	for _, c := range []string{"", id} {
		v, err := a.inject(c)
		if err == nil && v == axeVersion {
			_, err = tryEval[bool](a.tb, c, allow)
		}
		if err != nil || v != axeVersion {
			a.t.Fatalf("%s: load axe-core: version %q, %v; want %s (run scripts/install-deps.sh)", state, v, err, axeVersion)
		}
	}
	// The page's axe asks the frame's through postMessage, as for any
	// iframe, and merges its results into the page's.
	r := eval[axeResults](a.tb, `(() => {
		const target = (n) => n.target.map((s) => (Array.isArray(s) ? s.join(' ') : s)).join(' >>> ');
		return axe.run(document, {
			runOnly: { type: 'tag', values: `+jsArgs([]any{axeTags})+` },
			iframes: true,
		}).then((r) => ({
			version: r.testEngine.version,
			passes: r.passes.length,
			frames: r.passes.reduce((n, p) => n + p.nodes.filter((x) => x.target.length > 1).length, 0),
			contrast: r.passes.filter((p) => p.id === 'color-contrast').reduce((n, p) => n + p.nodes.filter((x) => x.target.length > 1).length, 0),
			incomplete: r.incomplete.map((v) => v.id + ': ' + v.nodes.map((n) => {
				const why = [...n.any, ...n.all, ...n.none].map((c) => c.message).filter((m) => m);
				return target(n) + (why.length ? ' (' + why[0] + ')' : '');
			}).join(', ')),
			violations: r.violations.map((v) => ({
				id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
				nodes: v.nodes.map((n) => ({ target: target(n), html: n.html, summary: n.failureSummary || '' })),
			})),
		}));
	})()`)
	if r.Frames == 0 {
		a.t.Errorf("%s: axe checked nothing inside the widget's frame", state)
	}
	return r
}

// axeKnown marks a violation that remains because fixing it needs a change
// to the widget's Go code (app/widget), which another change must make. A
// state's check lists the ones it has: they are logged with their fix, not
// failed; once one no longer occurs the check fails until its mark is
// deleted, so that no mark outlives its violation.
type axeKnown struct {
	rule   string // the axe rule's id
	target string // part of the node's target
	fix    string // what to change in app/widget, and where
}

// check runs axe in the state named state and fails the test for each
// violation but those marked known.
func (a *axeChecker) check(state string, known ...axeKnown) {
	a.t.Helper()
	r := a.run(state)
	a.t.Logf("%s: axe-core %s: %d rules passed, %d violated; in the widget's frame %d nodes passed (%d of them the colour contrast)",
		state, r.Version, r.Passes, len(r.Violations), r.Frames, r.Contrast)
	for _, s := range r.Incomplete {
		a.t.Logf("%s: for review (axe could not decide): %s", state, s)
	}
	seen := make([]bool, len(known))
	var failed []axeViolation
	for _, v := range r.Violations {
		rest := v
		rest.Nodes = nil
		for _, n := range v.Nodes {
			k := slices.IndexFunc(known, func(k axeKnown) bool { return k.rule == v.ID && strings.Contains(n.Target, k.target) })
			if k < 0 {
				rest.Nodes = append(rest.Nodes, n)
				continue
			}
			seen[k] = true
			a.t.Logf("%s: REMAINS, needs a change in app/widget: %s (%s) at %s\n    fix: %s", state, v.ID, v.Impact, n.Target, known[k].fix)
		}
		if len(rest.Nodes) > 0 {
			failed = append(failed, rest)
		}
	}
	for i, k := range known {
		if !seen[i] {
			a.t.Errorf("%s: the known violation %s at %s no longer occurs: delete its mark from this state's check", state, k.rule, k.target)
		}
	}
	if len(failed) == 0 {
		return
	}
	var b strings.Builder
	for _, v := range failed {
		b.WriteString("\n  " + v.String())
	}
	a.t.Errorf("%s: %d accessibility violations:%s", state, len(failed), b.String())
}

// TestBrowserAxe checks the demo storefront and the widget with axe-core
// in each state: the cart button with an empty cart and with items; the
// panel open empty and with several lines; the removal question and the
// undo of a removal; the catalog's notices (a price changed, a quantity
// above the stock, an item withdrawn) in the panel and in the review step;
// the review step; offline; and at 375 px. Each must have no violation.
func TestBrowserAxe(t *testing.T) {
	src := axeSource(t)
	srv := startCommerceServer(t)
	srv.putTestItems()
	tb := startBrowser(t, t.TempDir()).first
	origin := srv.origin()
	a := &axeChecker{t: t, tb: tb, origin: origin, demo: srv.demo(), src: src}
	tb.navigate(srv.demo() + "/")
	ready(tb)
	a.waitButton()
	a.check("closed, empty cart")

	eval[bool](tb, `cartsync.open()`)
	waitWidget(tb, origin, "the empty panel", `!!document.querySelector('#cartsync-panel .cartsync-empty')`)
	a.check("open, empty cart")
	eval[bool](tb, `cartsync.close()`)
	waitWidget(tb, origin, "the panel closed", `!document.getElementById('cartsync-panel')`)

	call(tb, "add", mugSKU, 3, map[string]any{"name": "Mug", "price": 1200, "currency": "EUR"})
	call(tb, "add", teeSKU, 1, map[string]any{"name": "Tee", "price": 1999, "currency": "EUR", "options": map[string]string{"size": "M"}})
	call(tb, "add", "SOCKS-01", 2, map[string]any{"name": "Striped socks", "price": 990, "currency": "EUR", "image": "socks.svg"})
	waitCart(tb, "the catalog's details after the acks", 15*time.Second, func(c hostCart) bool {
		return synced(c) && len(c.Lines) == 3 && c.Lines[0].Details.Name == mugName
	})
	waitWidget(tb, origin, "the badge", `document.querySelector('.cartsync-badge')?.textContent === '6'`)
	a.check("closed, 6 items")

	eval[bool](tb, `cartsync.open()`)
	waitWidget(tb, origin, "3 lines", `document.querySelectorAll('.cartsync-line').length === 3`)
	a.check("open, 3 lines")

	// The removal question (Decrease at 1), then Remove and its Undo.
	clickWidget(tb, origin, `.cartsync-line:nth-child(2) .cartsync-step`, "−")
	waitWidget(tb, origin, "the removal question", `!!document.querySelector('.cartsync-confirm')`)
	a.check("open, the removal question")
	clickWidget(tb, origin, `.cartsync-confirm-remove`, "")
	waitWidget(tb, origin, "the undo toast", `!!document.getElementById('cartsync-undo')`)
	a.check("open, Undo after a removal")
	clickWidget(tb, origin, `#cartsync-undo`, "")
	waitWidget(tb, origin, "the tee back", `document.querySelectorAll('.cartsync-line').length === 3`)
	// The Undo acknowledged before the catalog withdraws the tee: an add
	// that reached the server after would rightly be refused.
	waitCart(tb, "the Undo acknowledged", 15*time.Second, func(c hostCart) bool { return synced(c) && len(c.Lines) == 3 })

	// The catalog changes under the open cart: a new price and less stock
	// for the mug, the tee withdrawn.
	withdrawn := srv.item(teeSKU, teeName, "tee.svg", 1999, 10)
	withdrawn.Sellable = false
	srv.putItems(srv.item(mugSKU, mugName, "mug.svg", 1400, 2), withdrawn)
	waitWidget(tb, origin, "the catalog's notices", `document.querySelectorAll('.cartsync-lines .cartsync-fix-row').length === 3`)
	a.check("open, notices: price changed, only 2 available, withdrawn")
	clickWidget(tb, origin, ".cartsync-foot .cartsync-primary", "Review order")
	waitWidget(tb, origin, "the review's notices", `document.querySelectorAll('.cartsync-review .cartsync-fix-row').length === 3`)
	a.check("review step, checkout held back by notices")
	clickWidget(tb, origin, ".cartsync-actions .cartsync-secondary", "Back")
	clickWidget(tb, origin, ".cartsync-fix", "Accept new price")
	clickWidget(tb, origin, ".cartsync-fix", "Reduce to 2")
	clickWidget(tb, origin, ".cartsync-fix", "Remove")
	waitWidget(tb, origin, "the notices settled", `!document.querySelector('.cartsync-fix-row')`)
	clickWidget(tb, origin, ".cartsync-foot .cartsync-primary", "Review order")
	waitWidget(tb, origin, "the review step", `!!document.querySelector('.cartsync-review') && !document.querySelector('.cartsync-actions .cartsync-primary').disabled`)
	a.check("review step")
	clickWidget(tb, origin, ".cartsync-actions .cartsync-secondary", "Back")
	waitWidget(tb, origin, "the lines", `!!document.querySelector('.cartsync-line')`)

	tb.setOffline(true, srv.demo())
	waitStatus(tb, "offline")
	if c := call(tb, "add", "SOCKS-01", 1); c.Pending != 1 || c.Status != "offline" {
		t.Fatalf("an add offline: %s, want 1 pending, offline", c)
	}
	a.check("open, offline with a change waiting")
	eval[bool](tb, `cartsync.close()`)
	waitWidget(tb, origin, "the panel closed", `!document.getElementById('cartsync-panel')`)
	a.check("closed, offline")
	tb.setOffline(false, "")
	waitStatus(tb, "synced")

	setViewport(tb, 375, 812)
	a.check("closed, 375 px")
	eval[bool](tb, `cartsync.open()`)
	waitWidget(tb, origin, "the lines", `!!document.querySelector('.cartsync-line')`)
	a.check("open, 375 px")

	// The demo's other pages, the cart closed.
	setViewport(tb, 1280, 900)
	for _, page := range []string{"admin.html", "webhooks.html", "checkout.html"} {
		tb.navigate(srv.demo() + "/" + page)
		ready(tb)
		a.waitButton()
		a.check(page + ", closed")
	}
}

// TestBrowserAxeLogin checks the widget's states of a login with axe-core:
// the choice between this device's cart and the account's, then the
// notice of the merge the shopper chose.
func TestBrowserAxeLogin(t *testing.T) {
	src := axeSource(t)
	srv := startLoginServer(t)
	deviceB(t, srv.origin(), "alice", map[string]int{"MUG-01": 2, "CAP-01": 1})
	tb := startBrowser(t, t.TempDir()).first
	origin := srv.origin()
	a := &axeChecker{t: t, tb: tb, origin: origin, demo: srv.demo(), src: src}
	tb.navigate(srv.demo() + "/")
	ready(tb)
	a.waitButton()
	guest := quantities{"TEE-01": 1, "MUG-01": 1}
	addAll(tb, guest)
	waitSynced(tb, guest)

	eval[bool](tb, `cartsync.open()`)
	loginAs(tb, "alice", "", "choose")
	waitWidget(tb, origin, "the choice between the two carts", `document.querySelectorAll('#cartsync-choice button.cartsync-choose').length === 3`)
	a.check("open, the choice between two carts")

	clickWidget(tb, origin, `button.cartsync-choose[data-policy="merge"]`, "")
	waitWidget(tb, origin, "the merge notice", `!!document.querySelector('.cartsync-merge') && !document.getElementById('cartsync-choice')`)
	a.check("open, the notice of a merge")
}

// TestBrowserAxeLanguages checks the widget in German and in Arabic (right
// to left), set by the theme's locale, with axe-core: the cart button, and
// the panel with lines and the catalog's notices.
func TestBrowserAxeLanguages(t *testing.T) {
	src := axeSource(t)
	srv := startCommerceServer(t)
	srv.putTestItems()
	tb := startBrowser(t, t.TempDir()).first
	origin := srv.origin()
	a := &axeChecker{t: t, tb: tb, origin: origin, demo: srv.demo(), src: src}
	tb.navigate(srv.demo() + "/")
	ready(tb)
	a.waitButton()
	call(tb, "add", mugSKU, 3, map[string]any{"name": "Mug", "price": 1200, "currency": "EUR"})
	call(tb, "add", teeSKU, 1, map[string]any{"name": "Tee", "price": 1999, "currency": "EUR", "options": map[string]string{"size": "M"}})
	waitCart(tb, "the catalog's details after the acks", 15*time.Second, func(c hostCart) bool {
		return synced(c) && len(c.Lines) == 2 && c.Lines[0].Details.Name == mugName
	})
	// A new price and less stock for the mug, so that both fix buttons show.
	srv.putItems(srv.item(mugSKU, mugName, "mug.svg", 1400, 2))

	for _, tt := range []struct {
		locale, dir string
		known       []axeKnown
	}{
		// Every fix button's name starts with its text (WCAG 2.5.3),
		// in each language.
		{"de", "ltr", nil},
		{"ar", "rtl", nil},
	} {
		eval[bool](tb, `cartsync.theme({ locale: `+jsArgs([]any{tt.locale})+` })`)
		waitWidget(tb, origin, "the texts in "+tt.locale, `(() => {
			const r = document.getElementById('cartsync-root');
			return document.documentElement.lang === `+jsArgs([]any{tt.locale})+` && !!r && r.lang === `+jsArgs([]any{tt.locale})+` && r.dir === `+jsArgs([]any{tt.dir})+`;
		})()`)
		a.check(tt.locale + ", closed")
		eval[bool](tb, `cartsync.open()`)
		waitWidget(tb, origin, "the notices", `document.querySelectorAll('.cartsync-lines .cartsync-fix-row').length === 2`)
		a.check(tt.locale+", open, notices: price changed, only 2 available", tt.known...)
		eval[bool](tb, `cartsync.close()`)
		waitWidget(tb, origin, "the panel closed", `!document.getElementById('cartsync-panel')`)
	}
}
