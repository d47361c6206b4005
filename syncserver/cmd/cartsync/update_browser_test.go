package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The end-to-end test of deploys: a new build of the server (another
// version, so another app-worker.js) reaches a tab that is open on the demo
// storefront, through go-app's update notice, and no edit of the shopper's
// is lost on the way. The helpers are browser_test.go's and main_test.go's.

// updateServer is the cart server of a deploy test: the same address, demo
// address and data folder for every version, as a redeploy of one server.
type updateServer struct {
	t    *testing.T
	args []string
	srv  *cartServer
}

// deploy stops the running server, if any, and starts the build named
// build on the same addresses and data.
func (u *updateServer) deploy(build string) {
	u.t.Helper()
	if u.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := u.srv.m.Close(ctx)
		cancel()
		if err != nil {
			u.t.Logf("stop the old version: %v", err)
		}
	}
	version = build // the build's version, as -ldflags -X sets it
	m := startMain(u.t, u.args...)
	if u.srv == nil {
		u.srv = &cartServer{t: u.t, m: m}
	} else {
		u.srv.m = m
	}
}

// widgetVersion is what the widget's frame runs: the Version of the go-app
// page it was loaded from (app.js's GOAPP_VERSION) and the caches of its
// service worker.
type widgetVersion struct {
	Running string   `json:"running"`
	Caches  []string `json:"caches"`
	Marked  bool     `json:"marked"` // the frame has not reloaded since markFrame
}

func readWidgetVersion(tb *tab, cartOrigin string) widgetVersion {
	tb.t.Helper()
	return evalInWidget[widgetVersion](tb, cartOrigin, `(async () => ({
		running: goappGetenv('GOAPP_VERSION'),
		caches: (await caches.keys()).sort(),
		marked: window.__beforeUpdate === true,
	}))()`)
}

// markFrame marks the widget's current page, to tell whether it reloaded.
func markFrame(tb *tab, cartOrigin string) {
	tb.t.Helper()
	evalInWidget[bool](tb, cartOrigin, `(window.__beforeUpdate = true)`)
}

// waitWidgetVersion waits until the widget's frame runs build, from its
// cache, and returns what it runs.
func waitWidgetVersion(tb *tab, cartOrigin, build string, timeout time.Duration) widgetVersion {
	tb.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := readWidgetVersion(tb, cartOrigin)
		if v.Running == build && slices.Equal(v.Caches, []string{"app-" + build}) {
			return v
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s: the widget runs %+v after %v, want %s from its cache", tb.name, v, timeout, build)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// blockSync keeps the tab online but makes the cart server's sync API
// unreachable (its HTTP requests and the websocket): edits stay pending
// while the page, the service worker and its update check reach the
// server. unblock is setOffline(false, "").
func blockSync(tb *tab, cartOrigin string) {
	tb.t.Helper()
	host := strings.TrimPrefix(cartOrigin, "http://")
	conds := []*network.Conditions{
		{URLPattern: "http://" + host + "/v1/*", Offline: true, DownloadThroughput: -1, UploadThroughput: -1},
		{URLPattern: "ws://" + host + "/v1/*", Offline: true, DownloadThroughput: -1, UploadThroughput: -1},
	}
	ctx, cancel := context.WithTimeout(tb.ctx, evalTimeout)
	defer cancel()
	no := false
	if _, err := chromedp.Call(ctx, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
		EmulateOfflineServiceWorker: &no,
		MatchedNetworkConditions:    conds,
	}); err != nil {
		tb.t.Fatalf("%s: emulate network conditions: %v", tb.name, err)
	}
	if _, err := chromedp.Call(ctx, network.OverrideNetworkState, network.OverrideNetworkStateParams{
		Offline: false, DownloadThroughput: -1, UploadThroughput: -1,
	}); err != nil {
		tb.t.Fatalf("%s: override network state: %v", tb.name, err)
	}
}

// updateEvent is a step of an update, as the widget's page saw it: asked
// (the widget called go-app's goappTryUpdate), found (the registration
// found a new service worker), told (go-app's goappOnUpdate: the new worker
// is active, and the widget's OnAppUpdate follows).
type updateEvent struct {
	What string `json:"what"`
	At   int64  `json:"at"` // Unix milliseconds
}

type updateEvents []updateEvent

func (l updateEvents) first(what string) time.Time {
	for _, e := range l {
		if e.What == what {
			return time.UnixMilli(e.At)
		}
	}
	return time.Time{}
}

// since shows the events at their time since t0.
func (l updateEvents) since(t0 time.Time) string {
	var parts []string
	for _, e := range l {
		parts = append(parts, fmt.Sprintf("%s at %v", e.What, time.UnixMilli(e.At).Sub(t0).Round(time.Millisecond)))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func (l updateEvents) String() string { return l.since(time.Time{}) }

// watchUpdates records the steps of an update in the widget's current page,
// in its sessionStorage, which outlives a reload of the page.
func watchUpdates(tb *tab, cartOrigin string) {
	tb.t.Helper()
	evalInWidget[bool](tb, cartOrigin, `(async () => {
		const key = 'cartsync-test-updates';
		sessionStorage.setItem(key, '[]');
		const log = (what) => {
			const l = JSON.parse(sessionStorage.getItem(key) || '[]');
			l.push({ what, at: Date.now() });
			sessionStorage.setItem(key, JSON.stringify(l));
		};
		const ask = window.goappTryUpdate, tell = window.goappOnUpdate;
		window.goappTryUpdate = function () { log('asked'); return ask.apply(this, arguments); };
		window.goappOnUpdate = function () { log('told'); return tell.apply(this, arguments); };
		(await navigator.serviceWorker.getRegistration()).addEventListener('updatefound', () => log('found'));
		return true;
	})()`)
}

func updateLog(tb *tab, cartOrigin string) updateEvents {
	tb.t.Helper()
	return evalInWidget[updateEvents](tb, cartOrigin, `JSON.parse(sessionStorage.getItem('cartsync-test-updates') || '[]')`)
}

func updateSeen(tb *tab, cartOrigin, what string) time.Time {
	tb.t.Helper()
	return updateLog(tb, cartOrigin).first(what)
}

// waitReadies waits until the page got n ready events (recorded in
// window.__readies), and returns them: a ready after the first is a reload
// of the widget, and requests are answered again after it.
func waitReadies(tb *tab, n int) []hostCart {
	tb.t.Helper()
	return eval[[]hostCart](tb, `new Promise((resolve) => {
		const poll = () => (window.__readies.length >= `+jsArgs([]any{n})+` ? resolve(window.__readies) : setTimeout(poll, 50));
		poll();
	})`)
}

// TestBrowserUpdateReachesOpenTab deploys new versions of the server while
// the demo storefront is open:
//
//  1. with an edit pending (made offline; the sync API still unreachable
//     when the update comes), the widget does not reload by itself: it
//     offers the update, the edit stays pending, and after the shopper's
//     reload the new version runs and sends the edit, once;
//  2. with nothing pending and the panel closed, the new version reaches
//     the open tab with nothing done in it (no reload of the storefront, no
//     switch of tabs): the widget learns of it and reloads itself.
func TestBrowserUpdateReachesOpenTab(t *testing.T) {
	old := version
	t.Cleanup(func() { version = old })
	u := &updateServer{t: t, args: []string{
		"-addr", freeAddr(t), "-demo-addr", freeAddr(t), "-data", t.TempDir(), "-web", repoWeb(t),
	}}
	u.deploy("update-test-1")
	srv := u.srv
	origin := srv.origin()

	b := startBrowser(t, t.TempDir())
	tb := b.first
	tb.navigate(srv.demo() + "/")
	ready(tb)
	call(tb, "add", "TEE-01", 1)
	first := quantities{"TEE-01": 1}
	id := waitSynced(tb, first).ID
	waitPrecached(tb, origin)
	v1 := readWidgetVersion(tb, origin)
	suffix, ok := strings.CutPrefix(v1.Running, "update-test-1-")
	if !ok || !slices.Equal(v1.Caches, []string{"app-" + v1.Running}) {
		t.Fatalf("the widget runs %+v, want version update-test-1-… from its cache", v1)
	}
	v2, v3 := "update-test-2-"+suffix, "update-test-3-"+suffix // same wasm, same origins

	// An edit pending: made offline.
	tb.setOffline(true, srv.demo())
	waitStatus(tb, "offline")
	c := call(tb, "add", "NOTE-01", 2)
	want := quantities{"TEE-01": 1, "NOTE-01": 2}
	if c.Pending != 1 || !maps.Equal(c.quantities(), want) {
		t.Fatalf("offline add: %s, want %s with 1 pending", c, want)
	}

	// Version 2 is deployed. The tab is back online, but its edit cannot
	// reach the sync API yet when the update comes.
	deployed := time.Now()
	u.deploy("update-test-2")
	if srv.origin() != origin {
		t.Fatalf("the new version listens on %s, not %s", srv.origin(), origin)
	}
	eval[bool](tb, `(window.__readies = [], cartsync.on('ready', (c) => window.__readies.push(c)), true)`)
	markFrame(tb, origin)
	watchUpdates(tb, origin)
	blockSync(tb, origin)
	waitStatus(tb, "offline") // the widget tried at once, on the online event

	// The update check: the widget's own, when the page is shown again.
	if vis := evalInWidget[string](tb, origin, `document.visibilityState`); vis != "visible" {
		t.Fatalf("the widget's page is %s, want visible", vis)
	}
	evalInWidget[bool](tb, origin, `(document.dispatchEvent(new Event('visibilitychange')), true)`)
	deadline := time.Now().Add(15 * time.Second)
	for updateSeen(tb, origin, "told").IsZero() {
		if c := call(tb, "cart"); c.Pending != 1 || !maps.Equal(c.quantities(), want) {
			t.Fatalf("waiting for the update: %s, want %s with 1 pending", c, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the widget was not told of version 2 within 15 s: %+v; %s", readWidgetVersion(tb, origin), updateLog(tb, origin))
		}
		time.Sleep(100 * time.Millisecond)
	}
	log2 := updateLog(tb, origin)
	if updateSeen(tb, origin, "asked").IsZero() {
		t.Errorf("the widget did not ask for an update when its page was shown: %s", log2)
	}
	// An edit is pending: the widget stays, and offers the update.
	time.Sleep(500 * time.Millisecond)
	if v := readWidgetVersion(tb, origin); !v.Marked || v.Running != v1.Running || !slices.Equal(v.Caches, []string{"app-" + v2}) {
		t.Fatalf("after the update notice with an edit pending: %+v; want the page of %s still running (no reload), the cache of %s", v, v1.Running, v2)
	}
	if c := call(tb, "cart"); c.Pending != 1 || !maps.Equal(c.quantities(), want) || c.Status != "offline" {
		t.Fatalf("after the update notice: %s, want %s with 1 pending, offline", c, want)
	}
	if st := readStorage(tb, origin); st.Ops != 1 {
		t.Fatalf("the widget's outbox holds %d ops, want 1", st.Ops)
	}
	srv.checkServer(id, first, 1)
	eval[bool](tb, `cartsync.open()`)
	waitWidgetText(tb, origin, "as the update notice", `document.querySelector('button.cartsync-update')?.textContent`, "Update available — reload")

	// The shopper reloads: version 2 runs, from its cache, with the edit
	// still pending; once the sync API is reachable it is sent, once.
	evalInWidget[bool](tb, origin, `(document.querySelector('button.cartsync-update').click(), true)`)
	waitWidgetVersion(tb, origin, v2, 15*time.Second)
	readies := waitReadies(tb, 2)
	if c := readies[len(readies)-1]; c.Pending != 1 || !maps.Equal(c.quantities(), want) || c.ID != id {
		t.Fatalf("version 2 started with %s, want cart %s %s with 1 pending", c, id, want)
	}
	t.Logf("version 2, deployed at 0 with an edit pending: %s; running after the shopper's reload at %v",
		log2.since(deployed), time.Since(deployed).Round(time.Millisecond))
	srv.checkServer(id, first, 1)
	tb.setOffline(false, "")
	waitSynced(tb, want)
	srv.checkServer(id, want, 2)

	// Version 3 is deployed with nothing pending and the panel closed, and
	// nothing is done in the tab: the widget learns of it when it connects
	// to the new version, and reloads. Chromium looks for a new service
	// worker by itself about a second after a navigation (here the reload
	// into version 2): let that pass first, as in a tab open for a while.
	time.Sleep(2500 * time.Millisecond)
	if c := call(tb, "cart"); !synced(c) {
		t.Fatalf("before version 3: %s", c)
	}
	markFrame(tb, origin)
	watchUpdates(tb, origin)
	n := eval[int](tb, `window.__readies.length`)
	deployed = time.Now()
	u.deploy("update-test-3")
	v := waitWidgetVersion(tb, origin, v3, 15*time.Second)
	if v.Marked {
		t.Fatalf("the widget runs %s without having reloaded", v3)
	}
	running := time.Now()
	log3 := updateLog(tb, origin)
	asked, found := log3.first("asked"), log3.first("found")
	if asked.IsZero() || found.IsZero() || found.Before(asked) {
		t.Errorf("version 3 was not found after the widget asked for it: %s", log3.since(deployed))
	}
	t.Logf("version 3, deployed at 0 with nothing pending: %s; running in the open tab at %v", log3.since(deployed), running.Sub(deployed).Round(time.Millisecond))
	readies = waitReadies(tb, n+1)
	if c := readies[n]; c.Pending != 0 || !maps.Equal(c.quantities(), want) || c.ID != id {
		t.Fatalf("version 3 started with %s, want cart %s %s", c, id, want)
	}
	waitSynced(tb, want)
	srv.checkServer(id, want, 2)
}
