package syncserver_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
)

// The Engine's part in logins and expired carts, end to end: real engines
// against a real server (the machine's part, message by message, is
// syncclient's TestMachineLogin).

// loginE2EWatch records what an engine's OnChange saw.
type loginE2EWatch struct {
	mu    sync.Mutex
	last  syncclient.State
	codes map[protocol.ErrorCode]bool // every LastError code seen
}

func (w *loginE2EWatch) onChange(st syncclient.State) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.last = st
	if st.LastError != nil {
		if w.codes == nil {
			w.codes = map[protocol.ErrorCode]bool{}
		}
		w.codes[st.LastError.Code] = true
	}
}

// waitFor waits until ok holds for the state OnChange saw last.
func (w *loginE2EWatch) waitFor(t testing.TB, what string, ok func(syncclient.State) bool) syncclient.State {
	t.Helper()
	var st syncclient.State
	if !e2eEventually(func() bool {
		w.mu.Lock()
		st = w.last
		w.mu.Unlock()
		return ok(st)
	}) {
		t.Fatalf("OnChange never saw %s; last %+v", what, st)
	}
	return st
}

func (w *loginE2EWatch) saw(code protocol.ErrorCode) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.codes[code]
}

// loginE2ETab starts an engine on st over l, as windowEnv.tab does, whose
// OnChange w watches.
func loginE2ETab(env *windowEnv, st syncclient.Storage, l *link, w *loginE2EWatch) *syncclient.Engine {
	env.t.Helper()
	e, err := syncclient.New(syncclient.Config{
		Storage: st, Dial: l.dial, OnChange: w.onChange,
		BackoffBase: 5 * time.Millisecond, BackoffCap: 50 * time.Millisecond,
		Heartbeat: 500 * time.Millisecond, Rand: func() float64 { return 0.5 },
	})
	if err != nil {
		env.t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(env.ctx)
	go func() { done <- e.Run(ctx) }()
	env.t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			env.t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
	return e
}

// loginE2EGuestBesideAnn makes ann's cart (tea=1, from her phone) and a
// watched guest tab whose cart has mug=1, over l.
func loginE2EGuestBesideAnn(env *windowEnv) (e *syncclient.Engine, l *link, w *loginE2EWatch) {
	env.t.Helper()
	phone := env.tab(syncclient.NewMemStorage(), &link{url: env.url})
	if err := phone.SetUser("user:ann", ""); err != nil {
		env.t.Fatal(err)
	}
	env.add(phone, "tea")
	env.settle(phone, "ann")
	w, l = &loginE2EWatch{}, &link{url: env.url}
	e = loginE2ETab(env, syncclient.NewMemStorage(), l, w)
	env.add(e, "mug")
	env.settle(e, "")
	return e, l, w
}

// A login merges the device's guest cart into the user's: the engine shows
// the user's cart with the merge under a new client id, tells OnChange, and
// its next edits land on the user's cart.
func TestLoginE2EMerge(t *testing.T) {
	env := newWindowEnv(t, memstore.New())
	e, l, w := loginE2EGuestBesideAnn(env)
	guestClient := e.ClientID()
	if err := e.SetUser("user:ann", ""); err != nil {
		t.Fatal(err)
	}
	st := env.settle(e, "ann")
	if st.Cart.ID != syncserver.UserCartID("ann") || lineSummary(st.Cart) != "mug=1 tea=1" {
		t.Errorf("shows %s %q, want ann's cart with mug=1 tea=1", st.Cart.ID, lineSummary(st.Cart))
	}
	if st.Merge == nil || st.Merge.Status != protocol.MergeMerged || st.Merge.Result == nil || st.Merge.Result.Added != 1 {
		t.Errorf("Merge = %+v, want merged with one line added", st.Merge)
	}
	if e.ClientID() == guestClient {
		t.Error("same client id on the user cart")
	}
	w.waitFor(t, "the merge on ann's cart", func(s syncclient.State) bool { return s.Merge != nil && s.User == "ann" })
	if n := l.dialCount(); n != 2 {
		t.Errorf("%d dials, want 2: the guest's and the login's", n)
	}

	env.add(e, "jam")
	env.check(e, "ann", "jam=1 mug=1 tea=1")
	e.AckNotices()
	if st := e.Snapshot(); st.Merge != nil {
		t.Errorf("Merge %+v after AckNotices", st.Merge)
	}
}

// With the policy choose the server shows both carts and waits: the
// guest's edit is held until Engine.Choose, then merged once; there is
// nothing left to choose after.
func TestLoginE2EChoose(t *testing.T) {
	env := newWindowEnv(t, memstore.New())
	e, l, w := loginE2EGuestBesideAnn(env)
	l.setDown(true)
	w.waitFor(t, "offline", func(s syncclient.State) bool { return s.Status == syncclient.Offline })
	env.add(e, "jam") // made on the guest cart, unsent: held until the choice
	if err := e.SetUser("user:ann", cart.PolicyChoose); err != nil {
		t.Fatal(err)
	}
	l.setDown(false)
	st := w.waitFor(t, "the choice", func(s syncclient.State) bool {
		return s.Choice != nil && s.User == "ann" && s.Status == syncclient.Synced
	})
	if lineSummary(st.Choice.Guest) != "mug=1" || lineSummary(st.Choice.User) != "tea=1" {
		t.Errorf("Choice %+v, want the guest's mug and ann's tea", st.Choice)
	}
	if rec, err := env.store.Load(env.ctx, syncserver.UserCartID("ann"), nil); err != nil || lineSummary(rec.Cart) != "tea=1" {
		t.Errorf("ann's cart on the server before the choice: %v, %v; want tea=1", rec.Cart, err)
	}
	if err := e.Choose(env.ctx, cart.PolicyMerge); err != nil {
		t.Fatalf("Choose: %v", err)
	}
	env.check(e, "ann", "jam=1 mug=1 tea=1")
	if st := e.Snapshot(); st.Choice != nil || st.Merge == nil || st.Merge.Status != protocol.MergeMerged {
		t.Errorf("Choice %+v, Merge %+v; want merged and nothing to choose", st.Choice, st.Merge)
	}
	if err := e.Choose(env.ctx, cart.PolicyKeep); !errors.Is(err, syncclient.ErrNoChoice) {
		t.Errorf("Choose after the merge = %v, want ErrNoChoice", err)
	}
}

// A tab not told of a login in another tab pushes to the guest cart that
// login merged: the server answers forbidden, and the engine reconnects
// (Run goes on) to a fresh guest cart. Its edit is then the user's, and
// reaches the user's cart once this tab logs in too.
func TestLoginE2EForbiddenReconnects(t *testing.T) {
	env := newWindowEnv(t, memstore.New())
	shared := syncclient.NewMemStorage()
	a := env.tab(shared, &link{url: env.url})
	env.add(a, "a")
	env.settle(a, "")
	w := &loginE2EWatch{}
	l := &link{url: env.url}
	b := loginE2ETab(env, shared, l, w)
	guest := env.settle(b, "").Cart.ID
	if err := a.SetUser("user:tara", ""); err != nil {
		t.Fatal(err)
	}
	env.settle(a, "tara")

	env.add(b, "b") // on the merged guest cart, as far as b knows
	w.waitFor(t, "forbidden", func(syncclient.State) bool { return w.saw(protocol.ErrForbidden) })
	w.waitFor(t, "a fresh guest cart", func(s syncclient.State) bool {
		return s.Status == syncclient.Synced && s.User == "" && s.Cart.ID != "" &&
			s.Cart.ID != guest && s.Cart.ID != syncserver.UserCartID("tara")
	})
	if n := l.dialCount(); n < 2 {
		t.Errorf("%d dials, want a reconnect after forbidden", n)
	}
	if err := b.SetUser("user:tara", ""); err != nil {
		t.Fatal(err)
	}
	env.check(b, "tara", "a=1 b=1")
}

// expiredOffline is a watched guest tab whose cart (mug=1) the server
// purged while the tab was offline, with a tea added to it meanwhile; its
// link is still down.
type expiredOffline struct {
	env   *windowEnv
	store *syncclient.MemStorage
	w     *loginE2EWatch
	l     *link
	e     *syncclient.Engine
	guest syncclient.State // as the tab settled before going offline
	token string           // the device token then
}

func loginE2EExpiredOffline(t *testing.T) expiredOffline {
	t.Helper()
	clk := &clock{t: time.Now()}
	x := expiredOffline{env: newWindowEnvWith(t, syncserver.Config{Now: clk.now}), store: syncclient.NewMemStorage(), w: &loginE2EWatch{}}
	x.l = &link{url: x.env.url}
	x.e = loginE2ETab(x.env, x.store, x.l, x.w)
	x.env.add(x.e, "mug")
	x.guest = x.env.settle(x.e, "")
	x.token = loginE2EStored(t, x.store).DeviceToken

	x.l.setDown(true)
	x.w.waitFor(t, "offline", func(s syncclient.State) bool { return s.Status == syncclient.Offline })
	x.env.add(x.e, "tea") // on the cart about to be purged
	clk.add(31 * 24 * time.Hour)
	if n, err := x.env.srv.Purge(x.env.ctx, 0); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want the guest cart purged", n, err)
	}
	return x
}

// A guest cart purged for inactivity while the device was offline: the
// engine is told when it comes back, stores the new device token, shows
// the fresh cart, and sends it the add made on the purged cart (the
// shopper made it; the purged cart's own lines are gone).
func TestLoginE2ECartExpired(t *testing.T) {
	x := loginE2EExpiredOffline(t)
	e, w, store, old := x.e, x.w, x.store, x.guest
	oldTok := x.token
	x.l.setDown(false)

	st := w.waitFor(t, "the fresh cart", func(s syncclient.State) bool {
		return s.CartExpired && s.Status == syncclient.Synced && s.Pending == 0
	})
	if st.Cart.ID == old.Cart.ID || lineSummary(st.Cart) != "tea=1" {
		t.Errorf("shows %s %q, want a fresh cart with the tea, not %s", st.Cart.ID, lineSummary(st.Cart), old.Cart.ID)
	}
	if len(st.Dropped) != 0 {
		t.Errorf("Dropped = %+v, want none", st.Dropped)
	}
	if rec, err := x.env.store.Load(x.env.ctx, st.Cart.ID, nil); err != nil || lineSummary(rec.Cart) != "tea=1" {
		t.Errorf("the fresh cart on the server: %v, %v; want the tea", rec, err)
	}
	stored := loginE2EStored(t, store)
	if stored.DeviceToken == "" || stored.DeviceToken == oldTok || stored.Cart.ID != st.Cart.ID {
		t.Errorf("stored token %q and cart %s, want a new token and %s", stored.DeviceToken, stored.Cart.ID, st.Cart.ID)
	}
	e.AckNotices()
	if st := e.Snapshot(); st.CartExpired || st.Dropped != nil {
		t.Errorf("after AckNotices: CartExpired %v, Dropped %+v", st.CartExpired, st.Dropped)
	}
}

func loginE2EStored(t testing.TB, st syncclient.Storage) syncclient.Stored {
	t.Helper()
	s, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A guest cart purged while the device was offline with an edit queued on
// it, and the shopper logs in before the device is back: the engine is
// told the guest cart expired, and ends on the user's cart, synced, with
// that edit, as an edit made before the device reached the server goes to
// the account logged in by then (instead of resending a refused push for
// ever).
func TestLoginE2EExpiredGuestCartAtLogin(t *testing.T) {
	x := loginE2EExpiredOffline(t)
	env, e, w, guest := x.env, x.e, x.w, x.guest
	if err := e.SetUser("user:ann", ""); err != nil {
		t.Fatal(err)
	}
	x.l.setDown(false)

	st := w.waitFor(t, "ann's cart, synced", func(s syncclient.State) bool {
		return s.User == "ann" && s.Status == syncclient.Synced && s.Pending == 0
	})
	if st.Cart.ID != syncserver.UserCartID("ann") || lineSummary(st.Cart) != "tea=1" {
		t.Errorf("shows %s %q, want ann's cart with the tea", st.Cart.ID, lineSummary(st.Cart))
	}
	if len(st.Dropped) != 0 {
		t.Errorf("Dropped = %+v, want none (the tea of %s goes to ann's cart)", st.Dropped, guest.Cart.ID)
	}
	e.AckNotices()
	env.add(e, "jam")
	env.check(e, "ann", "jam=1 tea=1")
}

// The account's cart a device keeps from an earlier page is not the next
// person's: once the page says no one is logged in (NoUser) or logs out,
// even offline, the engine shows an empty cart with the edits made since,
// and those go to this device's own cart, not into the account's. The
// same account logging in again gets its cart back once the server has
// welcomed the login.
func TestLoginE2ENextPersonDoesNotSeeTheLastAccount(t *testing.T) {
	for _, how := range []string{"reload without login", "logout offline"} {
		t.Run(how, func(t *testing.T) {
			env, store, l, ann := annThenOffline(t, "tea")
			e := ann
			if how == "reload without login" {
				// The next page: a new engine on the same storage,
				// offline. The first one stays offline: a tab still
				// logged in would send the next person's edits to the
				// account (the edits made with no one logged in go to
				// the cart of whoever connects first).
				l = &link{url: env.url, down: true}
				var err error
				if e, err = syncclient.New(syncclient.Config{Storage: store, Dial: l.dial,
					BackoffBase: 5 * time.Millisecond, BackoffCap: 50 * time.Millisecond}); err != nil {
					t.Fatal(err)
				}
				if err := e.Reload(env.ctx); err != nil {
					t.Fatal(err)
				}
				if got := lineSummary(e.Snapshot().Cart); got != "tea=1" {
					t.Fatalf("the stored cart before the page said anything: %q, want tea=1 (a login may follow)", got)
				}
				e.NoUser()
				ctx, cancel := context.WithCancel(env.ctx)
				done := make(chan struct{})
				go func() { defer close(done); e.Run(ctx) }()
				t.Cleanup(func() { cancel(); <-done })
			} else if err := e.SetUser("", ""); err != nil {
				t.Fatal(err)
			}
			st := e.Snapshot()
			if len(st.Cart.Lines) != 0 || st.Cart.ID != "" || st.User != "" || st.Confirmed != 0 {
				t.Fatalf("with no one logged in the engine shows %s v%d %q of user %q, want an empty cart",
					st.Cart.ID, st.Confirmed, lineSummary(st.Cart), st.User)
			}
			env.add(e, "mug")
			if got := lineSummary(e.Snapshot().Cart); got != "mug=1" {
				t.Fatalf("after the next person's add the engine shows %q, want mug=1", got)
			}
			stored := loginE2EStored(t, store)
			if stored.Cart.User != "ann" {
				t.Errorf("the stored cart is marked as user %q's, want ann's", stored.Cart.User)
			}

			l.setDown(false)
			st = env.settle(e, "")
			if st.Cart.ID == syncserver.UserCartID("ann") || lineSummary(st.Cart) != "mug=1" {
				t.Errorf("online, the engine shows %s %q, want this device's cart with mug=1", st.Cart.ID, lineSummary(st.Cart))
			}
			rec, err := env.store.Load(env.ctx, syncserver.UserCartID("ann"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := lineSummary(rec.Cart); got != "tea=1" {
				t.Errorf("ann's cart on the server is %q, want tea=1: the next person's add went into it", got)
			}

			// Ann logs in again: her cart, merged with this device's.
			if err := e.SetUser("user:ann", cart.PolicyKeep); err != nil {
				t.Fatal(err)
			}
			env.check(e, "ann", "tea=1")
		})
	}
}

// Edits on both sides of a logout, offline: a jam made on ann's cart
// before it, a tea made after it (for no cart). Online, the tea goes to
// this device's cart; when ann logs in again, her jam is applied too: the
// two were queued under different client ids, so the login merge, which
// gives her cart the device cart's seqs, cannot make the jam a duplicate.
func TestLoginE2EEditsOnBothSidesOfAnOfflineLogout(t *testing.T) {
	env, _, l, e := annThenOffline(t, "mug")
	e2eEventually(func() bool { return e.Snapshot().Status == syncclient.Offline })
	env.add(e, "jam") // ann's, unsent
	if err := e.SetUser("", ""); err != nil {
		t.Fatal(err)
	}
	env.add(e, "tea") // no one's
	l.setDown(false)
	if !e2eEventually(func() bool {
		s := e.Snapshot()
		return s.User == "" && s.Cart.ID != "" && s.Pending == s.Waiting && s.Status == syncclient.Synced
	}) {
		t.Fatalf("never settled as a guest: %+v", e.Snapshot())
	}
	if got := lineSummary(e.Snapshot().Cart); got != "tea=1" {
		t.Errorf("the device's cart is %q, want tea=1", got)
	}
	if err := e.SetUser("user:ann", cart.PolicyMerge); err != nil {
		t.Fatal(err)
	}
	env.check(e, "ann", "jam=1 mug=1 tea=1")
}

// annThenOffline starts a tab on a storage of its own, logs ann in, adds
// sku and waits until her cart has it, then takes the tab's link down.
func annThenOffline(t *testing.T, sku string) (*windowEnv, *syncclient.MemStorage, *link, *syncclient.Engine) {
	t.Helper()
	env := newWindowEnv(t, memstore.New())
	store, l := syncclient.NewMemStorage(), &link{url: env.url}
	e := env.tab(store, l)
	if err := e.SetUser("user:ann", ""); err != nil {
		t.Fatal(err)
	}
	env.add(e, sku)
	env.check(e, "ann", sku+"=1")
	l.setDown(true)
	return env, store, l, e
}

// A login with replace on ann's laptop empties the cart her phone shows of
// its lines: the phone's engine tells it (State.Elsewhere); the laptop's,
// whose own login it was, does not.
func TestLoginE2EReplaceElsewhereIsTold(t *testing.T) {
	env := newWindowEnv(t, memstore.New())
	w := &loginE2EWatch{}
	phone := loginE2ETab(env, syncclient.NewMemStorage(), &link{url: env.url}, w)
	if err := phone.SetUser("user:ann", ""); err != nil {
		t.Fatal(err)
	}
	env.add(phone, "tea")
	env.settle(phone, "ann")

	laptop := env.tab(syncclient.NewMemStorage(), &link{url: env.url})
	env.add(laptop, "mug")
	env.settle(laptop, "")
	if err := laptop.SetUser("user:ann", cart.PolicyReplace); err != nil {
		t.Fatal(err)
	}
	if st := env.settle(laptop, "ann"); st.Elsewhere != nil || lineSummary(st.Cart) != "mug=1" {
		t.Errorf("laptop after its own login: Elsewhere %+v, cart %q; want none, mug=1", st.Elsewhere, lineSummary(st.Cart))
	}
	st := w.waitFor(t, "the replace told on the phone", func(s syncclient.State) bool { return s.Elsewhere != nil })
	if e := st.Elsewhere; e.Removed != 1 || e.Added != 1 || lineSummary(st.Cart) != "mug=1" {
		t.Errorf("phone: Elsewhere %+v, cart %q; want one line removed and one added, mug=1", e, lineSummary(st.Cart))
	}
	phone.AckNotices()
	if st := phone.Snapshot(); st.Elsewhere != nil {
		t.Errorf("Elsewhere %+v after AckNotices", st.Elsewhere)
	}
}

// A user's cart expired under the operator's user retention, while the
// user's device was offline with an edit made on it: when the device comes
// back it is told the cart expired, and goes on with a new, empty cart
// under the same id, its edit sent there (the tombstone refused the user
// every edit, and the device waited for ever). A request over HTTP is told
// too; the next finds the new cart.
func TestLoginE2EExpiredUserCartStartsOver(t *testing.T) {
	clk := &clock{t: time.Now()}
	env := newWindowEnvWith(t, syncserver.Config{Now: clk.now, UserRetention: 2 * time.Hour})
	store := syncclient.NewMemStorage()
	w := &loginE2EWatch{}
	l := &link{url: env.url}
	e := loginE2ETab(env, store, l, w)
	if err := e.SetUser("user:ann", ""); err != nil {
		t.Fatal(err)
	}
	env.add(e, "mug")
	env.check(e, "ann", "mug=1")
	old := e.Snapshot().Confirmed
	l.setDown(true)
	w.waitFor(t, "offline", func(s syncclient.State) bool { return s.Status == syncclient.Offline })
	env.add(e, "tea") // on ann's cart, about to expire
	clk.add(3 * time.Hour)
	if n, err := env.srv.Purge(env.ctx, 0); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want ann's cart expired", n, err)
	}
	l.setDown(false)
	st := w.waitFor(t, "ann's new cart, synced", func(s syncclient.State) bool {
		return s.CartExpired && s.User == "ann" && s.Status == syncclient.Synced && s.Pending == 0
	})
	if st.Cart.ID != syncserver.UserCartID("ann") || lineSummary(st.Cart) != "tea=1" || st.Confirmed <= old || len(st.Dropped) != 0 {
		t.Errorf("shows %s v%d %q (dropped %v), want ann's cart past v%d with the tea alone", st.Cart.ID, st.Confirmed, lineSummary(st.Cart), st.Dropped, old)
	}
	env.check(e, "ann", "tea=1")
}

// annsTwoDevices starts two devices of the user ann, each on storage and a
// link of its own, watched.
func annsTwoDevices(env *windowEnv) (tabs [2]*syncclient.Engine, watch [2]*loginE2EWatch, links [2]*link) {
	env.t.Helper()
	for i := range tabs {
		watch[i], links[i] = &loginE2EWatch{}, &link{url: env.url}
		tabs[i] = loginE2ETab(env, syncclient.NewMemStorage(), links[i], watch[i])
		if err := tabs[i].SetUser("user:ann", ""); err != nil {
			env.t.Fatal(err)
		}
	}
	return tabs, watch, links
}

// Every device of the user that was away while the user's cart expired is
// told when it comes back, not only the first: the second found the cart
// started over already, and its lines vanished without a word.
func TestLoginE2EEveryDeviceAwayToldOfTheExpiry(t *testing.T) {
	clk := &clock{t: time.Now()}
	env := newWindowEnvWith(t, syncserver.Config{Now: clk.now, UserRetention: 2 * time.Hour})
	tabs, watch, links := annsTwoDevices(env)
	env.add(tabs[0], "mug")
	env.check(tabs[1], "ann", "mug=1")
	for i := range links {
		links[i].setDown(true)
		watch[i].waitFor(t, "offline", func(s syncclient.State) bool { return s.Status == syncclient.Offline })
	}
	clk.add(3 * time.Hour)
	if n, err := env.srv.Purge(env.ctx, 0); err != nil || n < 1 {
		t.Fatalf("Purge = %d, %v; want ann's cart expired", n, err)
	}
	for i, name := range []string{"the first device back", "the second device back"} {
		links[i].setDown(false)
		st := watch[i].waitFor(t, name+", told", func(s syncclient.State) bool {
			return s.CartExpired && s.Status == syncclient.Synced && len(s.Cart.Lines) == 0
		})
		if st.Cart.ID != syncserver.UserCartID("ann") {
			t.Errorf("%s shows cart %s, want ann's", name, st.Cart.ID)
		}
	}
}

// The user's devices are told the storefront erased the user, as such:
// one connected at once, one away when it comes back (the emptied cart
// starts at the version after the erased one's, marked erased), and go on
// with the empty cart. The one away saw its lines vanish without a word,
// and both were told the cart had expired.
func TestLoginE2EDeviceAwayAtAnErasureIsTold(t *testing.T) {
	env := newWindowEnvWith(t, syncserver.Config{APIKeys: []string{testAPIKey}})
	tabs, watch, links := annsTwoDevices(env)
	env.add(tabs[0], "mug")
	env.check(tabs[0], "ann", "mug=1")
	env.check(tabs[1], "ann", "mug=1")
	links[1].setDown(true) // the second device away; the first stays connected
	watch[1].waitFor(t, "offline", func(s syncclient.State) bool { return s.Status == syncclient.Offline })
	base := "http" + strings.TrimSuffix(strings.TrimPrefix(env.url, "ws"), "/v1/sync")
	resp, body := httpDo(t, "DELETE", base+"/v1/backend/users/ann/cart", testAPIKey, nil)
	if resp.StatusCode != 200 {
		t.Fatalf("erase ann: %d %s", resp.StatusCode, body)
	}
	links[1].setDown(false)
	for i, name := range []string{"the device connected", "the device away"} {
		// The device connected is told as the server ends its
		// connection (before the emptied cart comes: no id yet).
		watch[i].waitFor(t, name+" told the cart was cleared, on ann's empty cart", func(s syncclient.State) bool {
			return s.CartExpired && s.CartErased && s.Status == syncclient.Synced && len(s.Cart.Lines) == 0 && s.Cart.ID == syncserver.UserCartID("ann")
		})
	}
}

// ann's cart was erased long ago and has lived on since (it still says
// erased). A device whose own guest cart expired signs in as ann before
// acknowledging its notice: it is not told ann's cart was cleared at the
// shop's request (it was, with any notice up on ann's cart).
func TestLoginE2EOnceErasedCartNotToldErasedAgain(t *testing.T) {
	clk := &clock{t: time.Now()}
	env := newWindowEnvWith(t, syncserver.Config{APIKeys: []string{testAPIKey}, Now: clk.now, GuestRetention: 2 * time.Hour})
	wa, la := &loginE2EWatch{}, &link{url: env.url}
	ann := loginE2ETab(env, syncclient.NewMemStorage(), la, wa)
	if err := ann.SetUser("user:ann", ""); err != nil {
		t.Fatal(err)
	}
	env.add(ann, "mug")
	env.check(ann, "ann", "mug=1")
	base := "http" + strings.TrimSuffix(strings.TrimPrefix(env.url, "ws"), "/v1/sync")
	if resp, body := httpDo(t, "DELETE", base+"/v1/backend/users/ann/cart", testAPIKey, nil); resp.StatusCode != 200 {
		t.Fatalf("erase: %d %s", resp.StatusCode, body)
	}
	wa.waitFor(t, "ann told", func(s syncclient.State) bool { return s.CartErased && s.Status == syncclient.Synced })
	ann.AckNotices()
	env.add(ann, "tee")
	env.check(ann, "ann", "tee=1")

	wg, lg := &loginE2EWatch{}, &link{url: env.url}
	guest := loginE2ETab(env, syncclient.NewMemStorage(), lg, wg)
	env.add(guest, "hat")
	wg.waitFor(t, "guest synced", func(s syncclient.State) bool {
		return s.Status == syncclient.Synced && s.Pending == 0 && len(s.Cart.Lines) == 1
	})
	lg.setDown(true)
	wg.waitFor(t, "offline", func(s syncclient.State) bool { return s.Status == syncclient.Offline })
	clk.add(3 * time.Hour)
	if n, err := env.srv.Purge(env.ctx, 0); err != nil || n < 1 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	lg.setDown(false)
	st := wg.waitFor(t, "guest told expired", func(s syncclient.State) bool { return s.CartExpired && s.Status == syncclient.Synced })
	if st.CartErased {
		t.Fatalf("the guest's own expiry told as an erasure")
	}
	if err := guest.SetUser("user:ann", ""); err != nil {
		t.Fatal(err)
	}
	st = wg.waitFor(t, "on ann's cart", func(s syncclient.State) bool {
		return s.User == "ann" && s.Status == syncclient.Synced && s.Cart != nil && s.Cart.ID == syncserver.UserCartID("ann")
	})
	if st.CartErased {
		t.Errorf("told ann's cart was cleared at the shop's request: only its guest cart expired")
	}
}

// Devices connected while their cart expires are told at once, a guest's
// and a user's alike: the guest goes on with a fresh cart under a new device
// token, the user's devices with the user's cart started over. They went on
// showing the expired cart's lines until their next edit or reconnect.
func TestLoginE2EExpiryToldToConnectedDevices(t *testing.T) {
	clk := &clock{t: time.Now()}
	env := newWindowEnvWith(t, syncserver.Config{Now: clk.now, UserRetention: 2 * time.Hour, GuestRetention: 2 * time.Hour})
	guestWatch, userWatch := &loginE2EWatch{}, &loginE2EWatch{}
	guest := loginE2ETab(env, syncclient.NewMemStorage(), &link{url: env.url}, guestWatch)
	user := loginE2ETab(env, syncclient.NewMemStorage(), &link{url: env.url}, userWatch)
	if err := user.SetUser("user:ann", ""); err != nil {
		t.Fatal(err)
	}
	env.add(guest, "cap")
	env.add(user, "mug")
	env.check(user, "ann", "mug=1")
	gst := guestWatch.waitFor(t, "the guest's cap synced", func(s syncclient.State) bool {
		return s.Status == syncclient.Synced && lineSummary(s.Cart) == "cap=1"
	})
	clk.add(3 * time.Hour)
	if n, err := env.srv.Purge(env.ctx, 0); err != nil || n < 2 {
		t.Fatalf("Purge = %d, %v; want both carts expired (and the user's device's guest cart)", n, err)
	}
	st := guestWatch.waitFor(t, "the guest told, on a fresh cart", func(s syncclient.State) bool {
		return s.CartExpired && s.Status == syncclient.Synced && s.Cart.ID != gst.Cart.ID
	})
	if len(st.Cart.Lines) != 0 {
		t.Errorf("the guest's fresh cart: %q, want empty", lineSummary(st.Cart))
	}
	st = userWatch.waitFor(t, "ann told, on her cart started over", func(s syncclient.State) bool {
		return s.CartExpired && s.Status == syncclient.Synced && len(s.Cart.Lines) == 0
	})
	if st.Cart.ID != syncserver.UserCartID("ann") {
		t.Errorf("ann's device shows cart %s, want hers", st.Cart.ID)
	}
}

// The user's devices, connected while the cart expired and started over,
// end on the new cart: the one whose hello started it over, and the other,
// told of the expiry as it happened (and pushed the new cart, in case that
// was lost). They do not go on showing the expired cart's lines until their
// next change or resync (minutes).
func TestLoginE2EStartedOverCartPushedToOtherDevices(t *testing.T) {
	clk := &clock{t: time.Now()}
	env := newWindowEnvWith(t, syncserver.Config{Now: clk.now, UserRetention: 2 * time.Hour})
	tabs, watch, links := annsTwoDevices(env)
	l := links[0]
	env.add(tabs[0], "mug")
	env.check(tabs[0], "ann", "mug=1")
	env.check(tabs[1], "ann", "mug=1")
	clk.add(3 * time.Hour)
	if n, err := env.srv.Purge(env.ctx, 0); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want ann's cart expired", n, err)
	}
	l.setDown(true) // the first device reconnects: its hello starts the cart over
	l.setDown(false)
	for i, name := range []string{"the first device", "the other device"} {
		watch[i].waitFor(t, name+" told, on the new, empty cart", func(s syncclient.State) bool {
			return s.CartExpired && s.Status == syncclient.Synced && len(s.Cart.Lines) == 0
		})
	}
}
