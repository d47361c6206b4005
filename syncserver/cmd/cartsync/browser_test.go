package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
)

// The end-to-end tests of the storefront embedding: the real server, the
// real widget (web/app.wasm, built by make wasm) in an iframe that the real
// embed.js inserts into the demo storefront, on another origin, in a real
// headless Chromium driven with chromedp.

// ---- the browser --------------------------------------------------------------

// chromium returns how to start the test browser: the wrapper of
// $CARTSYNC_TEST_CHROMIUM (which adds the headless flags), or
// /usr/bin/chromium with those flags. Without either the test is skipped,
// or fails where the services are required.
// sharedWidgetProcess has the browser ignore the widget page's
// Origin-Agent-Cluster header, which the server sends by default: with it,
// Chromium runs a same-site widget in a process of its own (what a
// storefront wants, measured by cartsync-hostbench), where this harness's
// evaluation in the widget's frame and its network emulation of the page do
// not reach. Everything else about the widget is the same in one process.
var sharedWidgetProcess = chromedp.Flag("disable-features", "OriginIsolationHeader")

func chromium(t *testing.T) []chromedp.ExecAllocatorOption {
	t.Helper()
	if p := os.Getenv("CARTSYNC_TEST_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CARTSYNC_TEST_CHROMIUM: %v", err)
		}
		return []chromedp.ExecAllocatorOption{chromedp.ExecPath(p), sharedWidgetProcess}
	}
	const bare = "/usr/bin/chromium"
	if _, err := os.Stat(bare); err == nil {
		opts := []chromedp.ExecAllocatorOption{chromedp.ExecPath(bare), sharedWidgetProcess}
		for _, f := range []string{"headless", "no-sandbox", "disable-gpu", "disable-background-networking",
			"disable-component-update", "disable-sync", "no-first-run", "disable-dev-shm-usage"} {
			opts = append(opts, chromedp.Flag(f, true))
		}
		return opts
	}
	if os.Getenv("CI") != "" || os.Getenv("CARTSYNC_REQUIRE_SERVICES") == "1" {
		t.Fatal("no browser: set CARTSYNC_TEST_CHROMIUM (scripts/testenv.sh env) or install /usr/bin/chromium")
	}
	t.Skip("no browser: set CARTSYNC_TEST_CHROMIUM or install /usr/bin/chromium")
	return nil
}

// browser is one Chromium process on a profile folder that outlives it, so
// that a test can kill the browser and start another on the same profile.
type browser struct {
	t     *testing.T
	root  context.Context // the first tab's; it owns the process
	stop  func()
	first *tab
}

func startBrowser(t *testing.T, profile string) *browser {
	t.Helper()
	opts := append(chromium(t),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		// Keep the timers of every tab at full speed, so that the
		// timings measure the widget, not Chromium's throttling of
		// tabs it considers in the background.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{t: t}
	tb := newTab(t, "tab 1")
	root, cancelRoot := chromedp.NewContext(allocCtx, chromedp.WithListener(tb.onEvent))
	tb.ctx, tb.close = root, cancelRoot
	b.root, b.first = root, tb
	b.stop = sync.OnceFunc(func() {
		cancelRoot()
		cancelAlloc()
	})
	t.Cleanup(b.stop)
	if err := chromedp.Do(root); err != nil { // starts the browser
		t.Fatalf("start the browser: %v", err)
	}
	return b
}

// newTab opens another tab of the browser.
func (b *browser) newTab(name string) *tab {
	b.t.Helper()
	tb := newTab(b.t, name)
	tb.ctx, tb.close = chromedp.NewContext(b.root, chromedp.WithListener(tb.onEvent))
	b.t.Cleanup(tb.close)
	if err := chromedp.Do(tb.ctx); err != nil {
		b.t.Fatalf("open %s: %v", name, err)
	}
	return tb
}

// kill ends the browser process with SIGKILL, as in a crash: the browser
// gets no chance to flush or to close anything.
func (b *browser) kill() {
	b.t.Helper()
	c := chromedp.FromContext(b.root)
	if c == nil || c.Browser == nil || c.Browser.Process() == nil {
		b.t.Fatal("no browser process to kill")
	}
	p := c.Browser.Process()
	if err := p.Kill(); err != nil {
		b.t.Fatalf("kill the browser: %v", err)
	}
	b.stop() // waits for the process to be reaped
	b.t.Logf("browser (pid %d) killed with SIGKILL", p.Pid)
}

// ---- a tab --------------------------------------------------------------------

// tab is a browser tab. It keeps the JavaScript contexts its frames have
// (to evaluate inside the widget's iframe) and its console, shown if the
// test fails.
type tab struct {
	t     *testing.T
	name  string
	ctx   context.Context
	close context.CancelFunc

	mu       sync.Mutex
	contexts []jsContext // in creation order
	console  []string
}

// jsContext is a JavaScript execution context of a frame of the tab.
type jsContext struct {
	unique string
	origin string
	gone   bool
}

func newTab(t *testing.T, name string) *tab {
	tb := &tab{t: t, name: name}
	t.Cleanup(func() {
		if t.Failed() {
			tb.mu.Lock()
			defer tb.mu.Unlock()
			t.Logf("console of %s:\n%s", tb.name, strings.Join(tb.console, "\n"))
		}
	})
	return tb
}

// onEvent runs in chromedp's loop for the tab: it must not block.
func (tb *tab) onEvent(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventExecutionContextCreated:
		var aux struct {
			IsDefault bool `json:"isDefault"`
		}
		_ = json.Unmarshal(ev.Context.AuxData, &aux)
		if aux.IsDefault {
			tb.contexts = append(tb.contexts, jsContext{unique: ev.Context.UniqueID, origin: ev.Context.Origin})
		}
	case *runtime.EventExecutionContextDestroyed:
		for i := range tb.contexts {
			if tb.contexts[i].unique == ev.ExecutionContextUniqueID {
				tb.contexts[i].gone = true
			}
		}
	case *runtime.EventExecutionContextsCleared:
		for i := range tb.contexts {
			tb.contexts[i].gone = true
		}
	case *runtime.EventConsoleAPICalled:
		var parts []string
		for _, a := range ev.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		tb.console = append(tb.console, fmt.Sprintf("%s %s: %s", time.Now().Format("15:04:05.000"), ev.Type, strings.Join(parts, " ")))
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		text := d.Text
		if d.Exception != nil {
			text += " " + d.Exception.Description
		}
		tb.console = append(tb.console, fmt.Sprintf("%s exception: %s", time.Now().Format("15:04:05.000"), text))
	}
}

// frameContext returns the newest live context of origin, if any.
func (tb *tab) frameContext(origin string) (string, bool) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for i := len(tb.contexts) - 1; i >= 0; i-- {
		if c := tb.contexts[i]; c.origin == origin && !c.gone {
			return c.unique, true
		}
	}
	return "", false
}

// hasContext reports whether the tab ever ran a script of origin.
func (tb *tab) hasContext(origin string) bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for _, c := range tb.contexts {
		if c.origin == origin {
			return true
		}
	}
	return false
}

// evalTimeout bounds one evaluation; calls of window.cartsync answer within
// 15 s or reject.
const evalTimeout = 20 * time.Second

// eval evaluates expr in the page (awaiting a promise) and decodes the
// result into T.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := tryEval[T](tb, "", expr)
	if err != nil {
		tb.t.Fatalf("%s: %s: %v", tb.name, expr, err)
	}
	return v
}

// tryEval evaluates expr in the page, or in the context with the unique id
// inContext if it is not "".
func tryEval[T any](tb *tab, inContext, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise, func(p *runtime.EvaluateParams) {
		p.UniqueContextID = inContext
	}))
}

// evalInWidget evaluates expr inside the widget's iframe (the newest context
// of the cart server's origin), retrying while the frame (re)loads.
func evalInWidget[T any](tb *tab, cartOrigin, expr string) T {
	tb.t.Helper()
	var last error
	deadline := time.Now().Add(evalTimeout)
	for time.Now().Before(deadline) {
		if id, ok := tb.frameContext(cartOrigin); ok {
			v, err := tryEval[T](tb, id, expr)
			if err == nil {
				return v
			}
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.t.Fatalf("%s: in the widget: %s: %v", tb.name, expr, last)
	panic("unreachable")
}

func (tb *tab) navigate(url string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		tb.t.Fatalf("%s: navigate to %s: %v", tb.name, url, err)
	}
}

func (tb *tab) reload() {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		tb.t.Fatalf("%s: reload: %v", tb.name, err)
	}
}

func (tb *tab) click(selector string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector))); err != nil {
		tb.t.Fatalf("%s: click %s: %v", tb.name, selector, err)
	}
}

// setOffline cuts the tab off the network, or puts it back: every request
// of the page and of its frames, the websocket, and the service worker's
// fetches, by network emulation, and navigator.onLine with its
// online/offline events. The storefront's own origin (reachable, if given)
// stays reachable: it stands for a storefront page that loads offline by
// itself, from its own service worker, which the demo does not have.
func (tb *tab) setOffline(offline bool, reachable string) {
	tb.t.Helper()
	conds := []*network.Conditions{}
	if offline {
		if reachable != "" {
			conds = append(conds, &network.Conditions{URLPattern: reachable + "/*", DownloadThroughput: -1, UploadThroughput: -1})
		}
		conds = append(conds, &network.Conditions{Offline: true, DownloadThroughput: -1, UploadThroughput: -1})
	}
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		EmulateOfflineServiceWorker: &offline,
		MatchedNetworkConditions:    conds,
	}); err != nil {
		tb.t.Fatalf("%s: emulate network conditions: %v", tb.name, err)
	}
	if _, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
		Offline: offline, DownloadThroughput: -1, UploadThroughput: -1,
	}); err != nil {
		tb.t.Fatalf("%s: override network state: %v", tb.name, err)
	}
}

// addScriptOnNewDocument runs src in every new document of the tab, before
// its own scripts.
func (tb *tab) addScriptOnNewDocument(src string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: src}); err != nil {
		tb.t.Fatalf("%s: add script: %v", tb.name, err)
	}
}

// ---- the cart as the host page sees it ----------------------------------------

// hostCart is CART of docs/embedding.md.
type hostCart struct {
	ID      string     `json:"id"`
	Lines   []hostLine `json:"lines"`
	Items   int        `json:"items"`
	Version uint64     `json:"version"`
	Synced  bool       `json:"synced"`
	Pending int        `json:"pending"`
	Status  string     `json:"status"`
}

type hostLine struct {
	Key      string            `json:"key"`
	SKU      string            `json:"sku"`
	Options  map[string]string `json:"options"`
	Quantity int               `json:"quantity"`
	Details  struct {
		Name     string `json:"name"`
		Image    string `json:"image"`
		Price    int64  `json:"price"`
		Currency string `json:"currency"`
	} `json:"details"`
}

// quantities maps line keys to quantities.
type quantities map[string]int

func (q quantities) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(q)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, q[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

func (c hostCart) quantities() quantities {
	q := quantities{}
	for _, l := range c.Lines {
		q[l.Key] = l.Quantity
	}
	return q
}

func (c hostCart) String() string {
	return fmt.Sprintf("cart %q v%d %s items %d pending %d status %s", c.ID, c.Version, c.quantities(), c.Items, c.Pending, c.Status)
}

// ready waits for window.cartsync.ready (embed.js is async) and returns the
// cart it resolves with.
func ready(tb *tab) hostCart {
	tb.t.Helper()
	return eval[hostCart](tb, `new Promise((resolve) => {
		const go = () => resolve(window.cartsync.ready);
		if (window.cartsync) go(); else window.addEventListener('cartsync:load', go, { once: true });
	})`)
}

// call calls a method of window.cartsync with JSON arguments and returns the
// cart it resolves with.
func call(tb *tab, method string, args ...any) hostCart {
	tb.t.Helper()
	return eval[hostCart](tb, "cartsync."+method+"("+jsArgs(args)+")")
}

// callErr calls a method that must reject, and returns the error's code.
func callErr(tb *tab, method string, args ...any) string {
	tb.t.Helper()
	return eval[string](tb, "cartsync."+method+"("+jsArgs(args)+`).then(() => 'resolved', (e) => e.code)`)
}

func jsArgs(args []any) string {
	var parts []string
	for _, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			panic(err)
		}
		parts = append(parts, string(b))
	}
	return strings.Join(parts, ", ")
}

// waitCart polls cartsync.cart() until ok holds.
func waitCart(tb *tab, what string, timeout time.Duration, ok func(hostCart) bool) hostCart {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c := call(tb, "cart")
		if ok(c) {
			return c
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: timed out after %v waiting for %s; %s", tb.name, timeout, what, c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func synced(c hostCart) bool { return c.Status == "synced" && c.Pending == 0 && c.Synced }

// recordSync makes the page keep every sync event with the time it came.
func recordSync(tb *tab) {
	tb.t.Helper()
	eval[bool](tb, `(window.__sync = [], cartsync.on('sync', (s) => window.__sync.push({ ...s, at: Date.now() })), true)`)
}

type syncEvent struct {
	Status  string `json:"status"`
	Pending int    `json:"pending"`
	Version uint64 `json:"version"`
	At      int64  `json:"at"` // Unix milliseconds
}

// ---- inside the widget ----------------------------------------------------------

// widgetStorage is what the widget keeps in IndexedDB.
type widgetStorage struct {
	Token string `json:"token"`
	Ops   int    `json:"ops"` // the outbox
}

// readStorage reads the widget's IndexedDB from inside its iframe.
func readStorage(tb *tab, cartOrigin string) widgetStorage {
	tb.t.Helper()
	return evalInWidget[widgetStorage](tb, cartOrigin, `new Promise((resolve, reject) => {
		const req = indexedDB.open('cartsync');
		req.onerror = () => reject(req.error);
		req.onsuccess = () => {
			const db = req.result, out = {};
			const tx = db.transaction(['meta', 'ops']);
			tx.objectStore('meta').get('deviceToken').onsuccess = (e) => { out.token = e.target.result || ''; };
			tx.objectStore('ops').count().onsuccess = (e) => { out.ops = e.target.result; };
			tx.oncomplete = () => { db.close(); resolve(out); };
			tx.onerror = () => { db.close(); reject(tx.error); };
		};
	})`)
}

// waitPrecached waits until the widget's service worker controls the frame
// and has cached the page and the wasm: from then on the widget loads
// offline. (go-app's worker caches in its install handler without
// waitUntil, so it can control pages before its cache is filled.)
func waitPrecached(tb *tab, cartOrigin string) {
	tb.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := evalInWidget[bool](tb, cartOrigin, `(async () => !!navigator.serviceWorker.controller &&
			!!(await caches.match('/')) && !!(await caches.match('/web/app.wasm')) && !!(await caches.match('/app.js')))()`)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatal("the widget's service worker did not precache the widget within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---- the server -----------------------------------------------------------------

// cartServer is the program under test, with the demo storefront.
type cartServer struct {
	t *testing.T
	m *Main
}

// repoWeb is the repository's web folder; make wasm builds app.wasm in it.
func repoWeb(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../../../web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "app.wasm")); err != nil {
		t.Fatalf("the browser tests need the widget: run make wasm (%v)", err)
	}
	return dir
}

// startCartServer runs the server on the embedded store, serving the widget
// from webDir, and the demo storefront on a second origin.
//
// The demo's catalog is left out: these flows are about syncing, and the
// demo catalog's stock limits would clamp their quantities.
func startCartServer(t *testing.T, webDir string) *cartServer {
	t.Helper()
	m := NewMain()
	args := []string{"-addr", "127.0.0.1:0", "-log-level", "error", "-data", t.TempDir(), "-web", webDir, "-demo-addr", "127.0.0.1:0"}
	if err := m.ParseFlags(args, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	m.demoNoCatalog = true
	runMain(t, m)
	return &cartServer{t: t, m: m}
}

// origin is the cart server's origin.
func (s *cartServer) origin() string { return s.m.URL() }

// demo is the demo storefront's origin.
func (s *cartServer) demo() string { return "http://" + s.m.demoLn.Addr().String() }

// record returns the server's committed cart.
func (s *cartServer) record(id string) *syncserver.Record {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rec, err := s.m.store.Load(ctx, id, nil)
	if err != nil {
		s.t.Fatalf("load cart %q from the store: %v", id, err)
	}
	return rec
}

// changes returns the server's change log of the cart.
func (s *cartServer) changes(id string) []syncserver.Change {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch, err := s.m.store.Changes(ctx, id, 0, syncserver.LogKeep)
	if err != nil {
		s.t.Fatalf("changes of cart %q: %v", id, err)
	}
	return ch
}

func recordQuantities(rec *syncserver.Record) quantities {
	q := quantities{}
	for _, l := range rec.Cart.Lines {
		q[l.Key] = l.Quantity
	}
	return q
}

// checkServer checks the server's cart: its lines, its version, and a change
// log of exactly edits entries, none applied twice.
func (s *cartServer) checkServer(id string, want quantities, edits int) {
	s.t.Helper()
	rec := s.record(id)
	if got := recordQuantities(rec); !maps.Equal(got, want) {
		s.t.Errorf("server cart %s, want %s", got, want)
	}
	if rec.Cart.Version != uint64(edits) {
		s.t.Errorf("server cart version %d, want %d (one per edit)", rec.Cart.Version, edits)
	}
	log := s.changes(id)
	seen := map[string]bool{}
	for _, c := range log {
		op := fmt.Sprintf("%s/%d", c.Op.Client, c.Op.Seq)
		if seen[op] {
			s.t.Errorf("op %s applied twice", op)
		}
		seen[op] = true
	}
	if len(log) != edits {
		s.t.Errorf("server change log has %d entries, want %d", len(log), edits)
	}
}

// waitStatus waits until the widget reports status.
func waitStatus(tb *tab, status string) hostCart {
	tb.t.Helper()
	return waitCart(tb, "status "+status, 10*time.Second, func(c hostCart) bool { return c.Status == status })
}

// waitSynced waits until the widget has sent everything and shows want.
func waitSynced(tb *tab, want quantities) hostCart {
	tb.t.Helper()
	return waitCart(tb, "synced with "+want.String(), 15*time.Second, func(c hostCart) bool {
		return synced(c) && maps.Equal(c.quantities(), want)
	})
}

func engineQuantities(c *cart.Cart) quantities {
	q := quantities{}
	if c != nil {
		for _, l := range c.Lines {
			q[l.Key] = l.Quantity
		}
	}
	return q
}

// getCart reads the cart of a device token over HTTP, as a storefront
// backend or a native app would.
func getCart(t *testing.T, base, token string) syncserver.CartResponse {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/v1/cart", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out syncserver.CartResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK || out.Cart == nil {
		t.Fatalf("GET /v1/cart = %d, %v", resp.StatusCode, err)
	}
	return out
}

// ---- the tests -------------------------------------------------------------------

// TestBrowserCartSurvivesReload adds items through window.cartsync and a
// data-cartsync-add button of the demo storefront (another origin than the
// cart server); after a reload they are there, and the server has them.
func TestBrowserCartSurvivesReload(t *testing.T) {
	srv := startCartServer(t, repoWeb(t))
	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.navigate(srv.demo() + "/")
	if c := ready(tb); len(c.Lines) != 0 || c.Version != 0 {
		t.Fatalf("a new shopper's cart: %s", c)
	}

	const tee = "TEE-01?size=M"
	c := call(tb, "add", "TEE-01", 2, map[string]any{
		"name": "Organic cotton tee", "price": 1999, "currency": "EUR", "image": "tee.svg", "options": map[string]string{"size": "M"},
	})
	if got := c.quantities(); !maps.Equal(got, quantities{tee: 2}) {
		t.Fatalf("after add: %s", c)
	}
	if d := c.Lines[0].Details; d.Name != "Organic cotton tee" || d.Price != 1999 || d.Currency != "EUR" || d.Image != srv.demo()+"/tee.svg" {
		t.Errorf("details %+v; want the image made absolute against the storefront", d)
	}

	// The add-to-cart button of the page, with no script of the page's.
	eval[bool](tb, `(window.__added = new Promise((resolve) =>
		document.addEventListener('cartsync:added', (e) => resolve(e.detail.sku), { once: true })), true)`)
	tb.click(`button[data-cartsync-add="MUG-01"]`)
	if sku := eval[string](tb, `window.__added`); sku != "MUG-01" {
		t.Errorf("cartsync:added for %q", sku)
	}
	want := quantities{tee: 2, "MUG-01": 1}
	c = waitSynced(tb, want)
	if c.ID == "" || c.Version != 2 {
		t.Fatalf("synced cart %s: want an id and version 2", c)
	}
	id := c.ID
	srv.checkServer(id, want, 2)
	st := readStorage(tb, srv.origin())
	if st.Token == "" || st.Ops != 0 {
		t.Fatalf("widget storage %+v: want a device token and an empty outbox", st)
	}
	if got := getCart(t, srv.origin(), st.Token); got.Cart.ID != id || !maps.Equal(engineQuantities(got.Cart), want) {
		t.Errorf("GET /v1/cart with the device token: %+v, want cart %s %s", got.Cart, id, want)
	}

	tb.reload()
	c = ready(tb) // from the device's storage, before any network
	if c.ID != id || !maps.Equal(c.quantities(), want) || c.Version != 2 {
		t.Fatalf("after reload: %s, want cart %s v2 %s", c, id, want)
	}
	waitSynced(tb, want)
	srv.checkServer(id, want, 2)
}

// TestBrowserOfflineEditsReachServerAndOtherDevices edits the cart offline,
// reloads offline (the widget comes from its service worker, the cart from
// IndexedDB), then goes online: the edits reach the server and a second
// client of the same cart, once each.
//
// Offline is network emulation on the tab (the page, the widget's frame, its
// websocket, the service worker) plus navigator.onLine and its events. The
// emulation alone does not close a websocket that is already open; the
// widget closes it on the browser's offline event, and the test checks that
// nothing reaches the server meanwhile.
func TestBrowserOfflineEditsReachServerAndOtherDevices(t *testing.T) {
	srv := startCartServer(t, repoWeb(t))
	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.navigate(srv.demo() + "/")
	ready(tb)
	call(tb, "add", "TEE-01", 1)
	call(tb, "add", "MUG-01", 2)
	before := quantities{"TEE-01": 1, "MUG-01": 2}
	id := waitSynced(tb, before).ID
	waitPrecached(tb, srv.origin())

	other := engine(t, srv.origin(), readStorage(tb, srv.origin()).Token)
	waitFor(t, other, "the second client has the cart", func(s syncclient.State) bool {
		return s.Cart.ID == id && maps.Equal(engineQuantities(s.Cart), before)
	})

	tb.setOffline(true, srv.demo())
	waitStatus(tb, "offline")
	c := call(tb, "add", "NOTE-01", 3)
	if c.Pending != 1 || c.Status != "offline" {
		t.Fatalf("offline add: %s", c)
	}
	call(tb, "setQuantity", "TEE-01", 4)
	c = call(tb, "remove", "MUG-01")
	left := quantities{"TEE-01": 4, "NOTE-01": 3}
	if !maps.Equal(c.quantities(), left) || c.Pending != 3 || c.Status != "offline" || c.Synced {
		t.Fatalf("after the offline edits: %s, want %s with 3 pending, offline", c, left)
	}

	tb.reload() // still offline
	c = ready(tb)
	if !maps.Equal(c.quantities(), left) || c.Pending != 3 || c.ID != id {
		t.Fatalf("after an offline reload: %s, want %s with 3 pending", c, left)
	}
	if !evalInWidget[bool](tb, srv.origin(), `!!navigator.serviceWorker.controller && !navigator.onLine`) {
		t.Error("the widget did not come from its service worker, or believes it is online")
	}
	waitStatus(tb, "offline")
	srv.checkServer(id, before, 2) // nothing got through
	if s := other.Snapshot(); !maps.Equal(engineQuantities(s.Cart), before) {
		t.Fatalf("the second client saw offline edits: %s", engineQuantities(s.Cart))
	}

	recordSync(tb)
	online := time.Now()
	tb.setOffline(false, "")
	waitFor(t, other, "the offline edits on the second client", func(s syncclient.State) bool {
		return maps.Equal(engineQuantities(s.Cart), left)
	})
	seen := time.Now()
	c = waitSynced(tb, left)
	var syncedAt time.Time
	for _, e := range eval[[]syncEvent](tb, `window.__sync`) {
		if e.Status == "synced" && e.Pending == 0 && e.At >= online.UnixMilli()-1 {
			syncedAt = time.UnixMilli(e.At)
			break
		}
	}
	if syncedAt.IsZero() {
		t.Fatal("the widget sent no sync event with status synced")
	}
	t.Logf("online → widget synced %v, → second client has the edits %v", syncedAt.Sub(online).Round(time.Millisecond), seen.Sub(online).Round(time.Millisecond))
	if d := seen.Sub(syncedAt); d > time.Second {
		t.Errorf("the second client saw the edits %v after the widget reported synced, want within 1 s", d)
	}
	if d := seen.Sub(online); d > 3*time.Second {
		t.Errorf("the edits reached the second client %v after the browser went online, want within 3 s", d)
	}
	if c.Version != 5 {
		t.Errorf("widget version %d, want 5", c.Version)
	}
	srv.checkServer(id, left, 5)
}

// TestBrowserTwoTabs edits in two tabs of the storefront; a tab offline on
// its own has its edits sent by the other; then both go offline, edit, and
// one is closed with edits pending: the remaining one sends them all, each
// once.
func TestBrowserTwoTabs(t *testing.T) {
	srv := startCartServer(t, repoWeb(t))
	b := startBrowser(t, t.TempDir())
	a := b.first
	a.name = "tab A"
	a.navigate(srv.demo() + "/")
	ready(a)
	tb := b.newTab("tab B")
	tb.navigate(srv.demo() + "/")
	ready(tb)

	call(a, "add", "CAP-01", 1)
	tb.click(`button[data-cartsync-add="MUG-01"]`)
	call(tb, "add", "TOTE-01", 2)
	want := quantities{"CAP-01": 1, "MUG-01": 1, "TOTE-01": 2}
	id := waitSynced(a, want).ID
	waitSynced(tb, want)
	srv.checkServer(id, want, 3)

	// B offline alone: A, online, sends B's edit from the shared outbox.
	tb.setOffline(true, "")
	waitStatus(tb, "offline")
	call(tb, "add", "NOTE-01", 1)
	want["NOTE-01"] = 1
	waitSynced(a, want)
	srv.checkServer(id, want, 4)

	// Both offline; B is closed with its edits pending.
	a.setOffline(true, "")
	waitStatus(a, "offline")
	call(a, "setQuantity", "CAP-01", 4)
	call(tb, "add", "SOCKS-01", 2)
	call(tb, "setQuantity", "TOTE-01", 3)
	c := call(tb, "remove", "MUG-01")
	want = quantities{"CAP-01": 4, "TOTE-01": 2 + 1, "NOTE-01": 1, "SOCKS-01": 2}
	if !maps.Equal(c.quantities(), want) || c.Pending != 4 || c.Status != "offline" {
		t.Fatalf("tab B before closing: %s, want %s with 4 pending (both tabs' edits)", c, want)
	}
	srv.checkServer(id, quantities{"CAP-01": 1, "MUG-01": 1, "TOTE-01": 2, "NOTE-01": 1}, 4)
	tb.close()

	a.setOffline(false, "")
	c = waitSynced(a, want)
	if c.Version != 8 {
		t.Errorf("tab A at version %d, want 8", c.Version)
	}
	srv.checkServer(id, want, 8)
}

// TestBrowserKilledWithPendingEdits kills the browser (SIGKILL) while edits
// are pending offline, starts it again on the same profile: once online,
// nothing is lost and nothing is applied twice.
func TestBrowserKilledWithPendingEdits(t *testing.T) {
	srv := startCartServer(t, repoWeb(t))
	profile := t.TempDir()
	b := startBrowser(t, profile)
	tb := b.first
	tb.navigate(srv.demo() + "/")
	ready(tb)
	call(tb, "add", "TEE-01", 1)
	id := waitSynced(tb, quantities{"TEE-01": 1}).ID

	tb.setOffline(true, "")
	waitStatus(tb, "offline")
	call(tb, "add", "CAP-01", 2)
	if st := readStorage(tb, srv.origin()); st.Ops != 1 {
		t.Fatalf("the widget's outbox holds %d ops, want 1", st.Ops)
	}
	// The kill follows the answer at once: an edit the page was told is
	// done must survive it.
	c := call(tb, "setQuantity", "TEE-01", 3)
	b.kill()
	want := quantities{"TEE-01": 3, "CAP-01": 2}
	if !maps.Equal(c.quantities(), want) || c.Pending != 2 {
		t.Fatalf("before the kill: %s, want %s with 2 pending", c, want)
	}
	srv.checkServer(id, quantities{"TEE-01": 1}, 1)

	b = startBrowser(t, profile)
	tb = b.first
	tb.navigate(srv.demo() + "/")
	c = ready(tb) // from IndexedDB, before any network
	if c.ID != id || !maps.Equal(c.quantities(), want) {
		t.Fatalf("after the restart: %s, want cart %s %s", c, id, want)
	}
	waitSynced(tb, want)
	srv.checkServer(id, want, 3)
}

// webCopy returns a copy of the repository's web folder with its own demo
// folder, to add test pages to.
func webCopy(t *testing.T) string {
	t.Helper()
	src := repoWeb(t)
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "demo" {
			if err := os.Symlink(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.CopyFS(filepath.Join(dst, "demo"), os.DirFS(filepath.Join(src, "demo"))); err != nil {
		t.Fatal(err)
	}
	return dst
}

// earlyPage calls window.cartsync synchronously right after the embed.js
// tag (not async), long before the widget has loaded.
const earlyPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Early calls</title></head>
<body>
<div id="cart"></div>
<script src="{{CART_SERVER}}/embed.js" data-mount="#cart"></script>
<script>
  window.early = { calledAt: Date.now(), readyAt: 0 };
  cartsync.ready.then(() => { window.early.readyAt = Date.now(); });
  window.early.results = Promise.allSettled([
    cartsync.add('EARLY-1', 2, { name: 'Early bird', price: 500, currency: 'EUR', image: '/img/early.png' }),
    cartsync.setQuantity('EARLY-1', 5),
    cartsync.add('EARLY-2'),
    cartsync.setQuantity('MISSING', 1),
    cartsync.add('BAD', 0),
    cartsync.cart(),
  ]).then((rs) => rs.map((r) => (r.status === 'fulfilled' ? { cart: r.value } : { code: r.reason.code || String(r.reason) })));
</script>
</body>
</html>
`

type callResult struct {
	Cart *hostCart `json:"cart"`
	Code string    `json:"code"`
}

// TestBrowserAPIFromOtherOrigins drives window.cartsync from a page on an
// allowed origin, with calls made before the widget is ready, and checks
// that a page on an origin that is not allowed gets nothing.
func TestBrowserAPIFromOtherOrigins(t *testing.T) {
	web := webCopy(t)
	if err := os.WriteFile(filepath.Join(web, "demo", "early.html"), []byte(earlyPage), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startCartServer(t, web)
	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.navigate(srv.demo() + "/early.html")
	results := eval[[]callResult](tb, `window.early.results`)
	calledAt := eval[int64](tb, `window.early.calledAt`)
	readyAt := eval[int64](tb, `window.cartsync.ready.then(() => window.early.readyAt)`)
	if calledAt >= readyAt {
		t.Errorf("the calls were made at %d, not before ready at %d", calledAt, readyAt)
	}
	wantQ := []quantities{{"EARLY-1": 2}, {"EARLY-1": 5}, {"EARLY-1": 5, "EARLY-2": 1}, nil, nil, {"EARLY-1": 5, "EARLY-2": 1}}
	wantCode := []string{"", "", "", "line_not_found", "invalid_quantity", ""}
	if len(results) != len(wantQ) {
		t.Fatalf("results: %+v", results)
	}
	for i, r := range results {
		switch {
		case wantCode[i] != "" && (r.Code != wantCode[i] || r.Cart != nil):
			t.Errorf("call %d: %+v, want the error %s", i+1, r, wantCode[i])
		case wantCode[i] == "" && (r.Cart == nil || !maps.Equal(r.Cart.quantities(), wantQ[i])):
			t.Errorf("call %d: %+v, want a cart %s", i+1, r, wantQ[i])
		}
	}
	if img := results[0].Cart.Lines[0].Details.Image; img != srv.demo()+"/img/early.png" {
		t.Errorf("image %q, want it made absolute against the storefront", img)
	}
	want := quantities{"EARLY-1": 5, "EARLY-2": 1}
	id := waitSynced(tb, want).ID
	srv.checkServer(id, want, 3) // the refused calls queued nothing

	// The rest of the API, once ready.
	for _, expr := range []string{`cartsync.open()`, `cartsync.close()`, `cartsync.theme({ accent: '#b00020' })`} {
		if !eval[bool](tb, expr) {
			t.Errorf("%s did not resolve with true", expr)
		}
	}
	if code := callErr(tb, "theme", map[string]string{"accent": "url(x)"}); code != "bad_request" {
		t.Errorf("a bad theme: %q, want bad_request", code)
	}
	if code := callErr(tb, "login", ""); code != "bad_request" {
		t.Errorf("login without a token: %q, want bad_request", code)
	}
	if got := eval[string](tb, `(() => { try { cartsync.on('nope', () => {}); return 'no error'; } catch (e) { return e.name; } })()`); got != "TypeError" {
		t.Errorf("on('nope'): %s, want a TypeError", got)
	}
	eval[bool](tb, `(window.__changes = [], cartsync.on('change', (c) => window.__changes.push(c.items)), true)`)
	if c := call(tb, "clear"); len(c.Lines) != 0 {
		t.Errorf("clear: %s", c)
	}
	waitSynced(tb, quantities{})
	if n := eval[int](tb, `window.__changes.at(-1)`); n != 0 {
		t.Errorf("the last change event had %d items, want 0", n)
	}
	srv.checkServer(id, quantities{}, 4)

	// The same storefront (the demo, through a proxy) on an origin that is
	// not allowed: the frame is refused, ready never resolves, calls
	// reject, and nothing is posted to the page. embed.js's timeouts (15 s,
	// 60 s) are shortened twentyfold in that page so that the test need
	// not wait a minute.
	demoURL, err := url.Parse(srv.demo())
	if err != nil {
		t.Fatal(err)
	}
	third := httptest.NewServer(httputil.NewSingleHostReverseProxy(demoURL))
	t.Cleanup(third.Close)
	evil := b.newTab("tab on a refused origin")
	evil.addScriptOnNewDocument(`if (location.origin === ` + jsArgs([]any{third.URL}) + ` && window === window.top) {
		window.__msgs = [];
		window.addEventListener('message', (e) => window.__msgs.push({ origin: e.origin, data: JSON.stringify(e.data) }), true);
		const realSetTimeout = window.setTimeout.bind(window);
		window.__realSetTimeout = realSetTimeout;
		window.setTimeout = (f, d, ...args) => realSetTimeout(f, d >= 10000 ? d / 20 : d, ...args);
	}`)
	evil.navigate(third.URL + "/")
	type refused struct {
		Add      string `json:"add"`
		Ready    string `json:"ready"`
		FromCart int    `json:"fromCart"`
		Frame    bool   `json:"frame"`
	}
	got := eval[refused](evil, `(async () => {
		const ready = window.cartsync.ready.then((c) => 'resolved with ' + JSON.stringify(c), (e) => 'rejected: ' + e.code);
		const add = await cartsync.add('TEE-01', 1).then(() => 'resolved', (e) => e.code);
		await new Promise((resolve) => window.__realSetTimeout(resolve, 1000));
		return {
			add,
			ready: await Promise.race([ready, Promise.resolve('pending')]),
			fromCart: window.__msgs.filter((m) => m.origin === `+jsArgs([]any{srv.origin()})+`).length,
			frame: !!document.querySelector('iframe'),
		};
	})()`)
	if got.Add != "not_ready" || got.Ready != "pending" || got.FromCart != 0 || !got.Frame {
		t.Errorf("on a refused origin: %+v; want add rejected with not_ready, ready pending, no message from the cart server (and the frame in the page)", got)
	}
	if evil.hasContext(srv.origin()) {
		t.Error("the widget ran in the frame of a refused origin")
	}
}
