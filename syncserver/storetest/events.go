package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// Contract tests of the outbox's writing side and of its feed: events
// written with the change that made them (or not at all), coalesced,
// written by Purge, read in order and never skipped.

// feedWait bounds how long the suite waits for the feed to show a commit:
// a store's feed may lag while older transactions run (see postgres).
const feedWait = 10 * time.Second

// newEvent returns an event of cartID, of type typ, with the id "evt_"+name
// and data naming it.
func newEvent(name, typ, cartID string, at time.Time) syncserver.Event {
	data, _ := json.Marshal(map[string]any{"name": name, "cart": cartID, "n": 1})
	return syncserver.Event{ID: "evt_" + name, Type: typ, CartID: cartID, At: at, Data: data}
}

// coalescing returns ev asking to coalesce.
func coalescing(ev syncserver.Event) syncserver.Event {
	ev.Coalesce = true
	return ev
}

// withEvents returns a Mutate fn that applies ops (as apply does) and
// appends evs.
func withEvents(evs []syncserver.Event, ops ...cart.Op) func(*syncserver.Record) error {
	return func(rec *syncserver.Record) error {
		if err := apply(ops...)(rec); err != nil {
			return err
		}
		rec.Events = append(rec.Events, evs...)
		return nil
	}
}

// emit runs a Mutate of cartID that only appends evs.
func emit(t testing.TB, s syncserver.Store, cartID string, evs ...syncserver.Event) {
	t.Helper()
	mutate(t, s, cartID, nil, withEvents(evs))
}

// feedAll reads the whole feed after cursor, in pages of 7 (to cross page
// boundaries), checking that each page keeps to the limit.
func feedAll(t testing.TB, s syncserver.EventStore, cursor string) []syncserver.Event {
	t.Helper()
	const page = 7
	var all []syncserver.Event
	for {
		evs, err := s.EventsAfter(t.Context(), cursor, page)
		if err != nil {
			t.Fatalf("EventsAfter(%q, %d): %v", cursor, page, err)
		}
		if len(evs) > page {
			t.Fatalf("EventsAfter(%q, %d) returned %d events", cursor, page, len(evs))
		}
		if len(evs) == 0 {
			return all
		}
		all = append(all, evs...)
		cursor = evs[len(evs)-1].Cursor
	}
}

// waitFeed reads the feed after cursor until it holds at least n events,
// for up to feedWait, and returns what it last read.
func waitFeed(t testing.TB, s syncserver.EventStore, cursor string, n int) []syncserver.Event {
	t.Helper()
	deadline := time.Now().Add(feedWait)
	for {
		evs := feedAll(t, s, cursor)
		if len(evs) >= n || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ids(evs []syncserver.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return string(xs) == string(ys)
}

// checkEvent checks what the core gave an event and its state.
func checkEvent(t testing.TB, what string, got, want syncserver.Event, state string) {
	t.Helper()
	if got.ID != want.ID || got.Type != want.Type || got.CartID != want.CartID {
		t.Errorf("%s: event %s %s of %s, want %s %s of %s", what, got.ID, got.Type, got.CartID, want.ID, want.Type, want.CartID)
	}
	if !sameMilli(got.At, want.At) {
		t.Errorf("%s: event %s At = %v, want %v to the millisecond", what, want.ID, got.At, want.At)
	}
	if !sameJSON(got.Data, want.Data) {
		t.Errorf("%s: event %s Data = %s, want %s", what, want.ID, got.Data, want.Data)
	}
	if got.State != state {
		t.Errorf("%s: event %s State = %q, want %q", what, want.ID, got.State, state)
	}
	if got.Seq <= 0 || got.Cursor == "" {
		t.Errorf("%s: event %s has Seq %d and Cursor %q, want both set", what, want.ID, got.Seq, got.Cursor)
	}
}

func counts(t testing.TB, s syncserver.EventStore) map[string]int64 {
	t.Helper()
	c, err := s.EventCounts(t.Context())
	if err != nil {
		t.Fatalf("EventCounts: %v", err)
	}
	return c
}

func checkCounts(t testing.TB, what string, s syncserver.EventStore, pending, delivered, dead, coalesced int64) {
	t.Helper()
	want := map[string]int64{
		syncserver.EventPending: pending, syncserver.EventDelivered: delivered,
		syncserver.EventDead: dead, syncserver.EventCoalesced: coalesced,
	}
	got := counts(t, s)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: EventCounts = %v, want %v", what, got, want)
	}
}

// Events a Mutate appends are in the feed after its commit, in commit
// order and, within a Mutate, in the order appended; they keep their ids,
// and the feed reads the same from any cursor it gave.
func testEventsFromMutate(t *testing.T, s commerceStore) {
	a1 := newEvent("a1", syncserver.EventCartCreated, "cart-a", stamp(1))
	a2 := newEvent("a2", syncserver.EventCheckoutCreated, "cart-a", stamp(1))
	a2.Data = json.RawMessage(`{"checkout": {"id": "co_1", "total": 4200, "lines": [1, 2]}, "note": "é \u2028"}`)
	b1 := newEvent("b1", syncserver.EventCartCreated, "cart-b", stamp(2))
	a3 := newEvent("a3", syncserver.EventCartUpdated, "cart-a", stamp(3))
	a3.NextAt = stamp(3).Add(time.Minute)
	mutate(t, s, "cart-a", []string{"c1"}, withEvents([]syncserver.Event{a1, a2}, addOp("c1", 1, "mug", 1)))
	emit(t, s, "cart-b", b1)
	mutate(t, s, "cart-a", []string{"c1"}, withEvents([]syncserver.Event{a3}, addOp("c1", 2, "mug", 1)))
	want := []syncserver.Event{a1, a2, b1, a3}

	got := waitFeed(t, s, "", len(want))
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("feed = %q, want %q", ids(got), ids(want))
	}
	for i := range got {
		checkEvent(t, "feed", got[i], want[i], syncserver.EventPending)
		if got[i].Attempts != 0 || got[i].LastError != "" {
			t.Errorf("feed: event %s has Attempts %d, LastError %q; want none", got[i].ID, got[i].Attempts, got[i].LastError)
		}
		if i > 0 && got[i].Seq <= got[i-1].Seq {
			t.Errorf("feed: event %s has Seq %d after %d: seqs of successive commits must increase", got[i].ID, got[i].Seq, got[i-1].Seq)
		}
	}
	if !sameMilli(got[0].NextAt, a1.At) {
		t.Errorf("event a1: NextAt = %v, want its At %v (due at once)", got[0].NextAt, a1.At)
	}
	if !sameMilli(got[3].NextAt, a3.NextAt) {
		t.Errorf("event a3: NextAt = %v, want the one it was given, %v", got[3].NextAt, a3.NextAt)
	}
	if rec := load(t, s, "cart-a", "c1"); rec.Cart.Version != 2 || len(rec.Events) != 0 {
		t.Errorf("Load(cart-a): version %d with %d events, want version 2 and no events", rec.Cart.Version, len(rec.Events))
	}

	// Every cursor the feed gave reads the rest; the last reads nothing.
	for i, ev := range got {
		rest := feedAll(t, s, ev.Cursor)
		if !slices.Equal(ids(rest), ids(want[i+1:])) {
			t.Errorf("feed after %s's cursor = %q, want %q", ev.ID, ids(rest), ids(want[i+1:]))
		}
	}
	again, err := s.EventsAfter(t.Context(), "", 2)
	if err != nil || !slices.Equal(ids(again), ids(want[:2])) || again[0].Cursor != got[0].Cursor {
		t.Errorf("EventsAfter(\"\", 2) = %q, %v; want %q with the same cursors", ids(again), err, ids(want[:2]))
	}
	if evs, err := s.EventsAfter(t.Context(), "", 0); err != nil || len(evs) != 0 {
		t.Errorf("EventsAfter(\"\", 0) = %q, %v; want none", ids(evs), err)
	}
	for _, bad := range []string{"bogus", "12x", "-1", "1-2-3", " 1"} {
		if evs, err := s.EventsAfter(t.Context(), bad, 10); err == nil {
			t.Errorf("EventsAfter(%q) = %q, no error; want a bad-cursor error", bad, ids(evs))
		}
	}
	checkCounts(t, "after the Mutates", s, 4, 0, 0, 0)
}

// The events fn appends to either record of a Merge are written with it.
func testEventsFromMerge(t *testing.T, s commerceStore) {
	mutate(t, s, "guest-1", []string{"c1"}, withEvents(
		[]syncserver.Event{newEvent("g1", syncserver.EventCartCreated, "guest-1", stamp(1))}, addOp("c1", 1, "mug", 1)))
	waitFeed(t, s, "", 1)
	merged := newEvent("m1", syncserver.EventCartMerged, "guest-1", stamp(2))
	created := newEvent("u1", syncserver.EventCartCreated, "user-1", stamp(2))
	updated := coalescing(newEvent("u2", syncserver.EventCartUpdated, "user-1", stamp(2)))
	err := s.Merge(t.Context(), "guest-1", "user-1", func(from, into *syncserver.Record) error {
		if err := loginMerge("user-1")(from, into); err != nil {
			return err
		}
		from.Events = append(from.Events, merged)
		into.Events = append(into.Events, created, updated)
		return nil
	})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	got := waitFeed(t, s, "", 4)
	if len(got) != 4 || got[0].ID != "evt_g1" {
		t.Fatalf("feed = %q, want evt_g1 then the merge's 3 events", ids(got))
	}
	// Within a cart, the order appended; the carts' events may interleave.
	byCart := map[string][]string{}
	for _, ev := range got[1:] {
		byCart[ev.CartID] = append(byCart[ev.CartID], ev.ID)
	}
	if g, u := byCart["guest-1"], byCart["user-1"]; !slices.Equal(g, []string{"evt_m1"}) || !slices.Equal(u, []string{"evt_u1", "evt_u2"}) {
		t.Errorf("merge events by cart = %v, want guest-1 [evt_m1], user-1 [evt_u1 evt_u2]", byCart)
	}
	want := map[string]syncserver.Event{merged.ID: merged, created.ID: created, updated.ID: updated}
	for _, ev := range got[1:] {
		checkEvent(t, "feed after Merge", ev, want[ev.ID], syncserver.EventPending)
	}
	if rec := load(t, s, "user-1"); rec.Cart.Items() != 1 {
		t.Errorf("user-1 after Merge holds %d items, want 1", rec.Cart.Items())
	}
}

// Events are written only with a commit: not when fn fails, when the
// store refuses what fn left, or when an event cannot be written (then
// the cart change is not written either).
func testEventsNotWrittenOnError(t *testing.T, s commerceStore) {
	makeCart(t, s, "guest-x", syncserver.KindGuest, stamp(1))
	first := newEvent("first", syncserver.EventCartCreated, "guest-x", stamp(1))
	emit(t, s, "guest-x", first)
	waitFeed(t, s, "", 1)

	boom := func(name string) func(*syncserver.Record) error {
		return func(rec *syncserver.Record) error {
			if err := applyOne(rec, addOp("c1", rec.Seqs["c1"]+1, "mug", 1)); err != nil {
				return err
			}
			rec.Events = append(rec.Events, newEvent(name, syncserver.EventCartUpdated, "guest-x", stamp(2)))
			return errBoom
		}
	}
	if err := s.Mutate(t.Context(), "guest-x", []string{"c1"}, boom("fn-failed")); !errors.Is(err, errBoom) {
		t.Errorf("Mutate with fn failing = %v, want %v", err, errBoom)
	}
	if err := s.Mutate(t.Context(), "new-cart", nil, boom("fn-failed-new")); !errors.Is(err, errBoom) {
		t.Errorf("Mutate of a new cart with fn failing = %v, want %v", err, errBoom)
	}
	err := s.Mutate(t.Context(), "guest-x", nil, func(rec *syncserver.Record) error {
		rec.Events = append(rec.Events, newEvent("nil-cart", syncserver.EventCartUpdated, "guest-x", stamp(2)))
		rec.Cart = nil
		return nil
	})
	if err == nil {
		t.Errorf("Mutate with fn setting Cart = nil: got no error")
	}
	err = s.Merge(t.Context(), "guest-x", "user-x", func(from, into *syncserver.Record) error {
		from.Events = append(from.Events, newEvent("merge-from", syncserver.EventCartMerged, "guest-x", stamp(2)))
		into.Events = append(into.Events, newEvent("merge-into", syncserver.EventCartCreated, "user-x", stamp(2)))
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Errorf("Merge with fn failing = %v, want %v", err, errBoom)
	}
	// An id already in the outbox fails the Mutate, change and all.
	err = s.Mutate(t.Context(), "guest-x", []string{"c1"}, func(rec *syncserver.Record) error {
		if err := applyOne(rec, addOp("c1", rec.Seqs["c1"]+1, "mug", 1)); err != nil {
			return err
		}
		again := first
		again.At = stamp(3)
		rec.Events = append(rec.Events, newEvent("before-dup", syncserver.EventCartUpdated, "guest-x", stamp(3)), again)
		return nil
	})
	if err == nil {
		t.Errorf("Mutate appending an event id already written: got no error")
	}
	if rec := load(t, s, "guest-x", "c1"); rec.Cart.Version != 1 || rec.Seqs["c1"] != 1 {
		t.Errorf("guest-x after the failed Mutates: version %d, seq %d; want 1 and 1 (nothing written)", rec.Cart.Version, rec.Seqs["c1"])
	}

	// A commit after them shows that the feed has caught up.
	emit(t, s, "guest-x", newEvent("last", syncserver.EventCartUpdated, "guest-x", stamp(4)))
	got := waitFeed(t, s, "", 2)
	if want := []string{"evt_first", "evt_last"}; !slices.Equal(ids(got), want) {
		t.Errorf("feed = %q, want %q: a failed Mutate or Merge wrote events", ids(got), want)
	}
	checkCounts(t, "after the failed writes", s, 2, 0, 0, 0)
}

// A coalescing event replaces its cart's pending events of its type that
// no delivery tried and no lease holds, and only those.
func testEventsCoalesce(t *testing.T, s commerceStore) {
	upd := func(name, cartID string) syncserver.Event {
		return coalescing(newEvent(name, syncserver.EventCartUpdated, cartID, stamp(1)))
	}
	// Events a delivery holds or tried: the first of cart-leased is
	// claimed, the first of cart-tried failed once.
	emit(t, s, "cart-leased", upd("leased-1", "cart-leased"))
	emit(t, s, "cart-tried", upd("tried-1", "cart-tried"))
	now := time.Now()
	claimed := claim(t, s, now, time.Hour, 10)
	if !slices.Equal(ids(claimed), []string{"evt_leased-1", "evt_tried-1"}) {
		t.Fatalf("ClaimEvents = %q, want evt_leased-1 and evt_tried-1", ids(claimed))
	}
	if err := s.EventFailed(t.Context(), claimed[1].Seq, now, "503", false); err != nil {
		t.Fatalf("EventFailed: %v", err)
	}
	emit(t, s, "cart-leased", upd("leased-2", "cart-leased"))
	emit(t, s, "cart-tried", upd("tried-2", "cart-tried"))

	emit(t, s, "cart-a", upd("a1", "cart-a"))
	emit(t, s, "cart-a", upd("a2", "cart-a")) // coalesces a1
	emit(t, s, "cart-a", newEvent("a3", syncserver.EventCheckoutCreated, "cart-a", stamp(2)))
	emit(t, s, "cart-b", upd("b1", "cart-b")) // another cart: a2 stays
	emit(t, s, "cart-a", newEvent("a4", syncserver.EventCartUpdated, "cart-a", stamp(3)))
	emit(t, s, "cart-a", upd("a5", "cart-a"), upd("a6", "cart-a")) // coalesces a2, a4, then a5
	emit(t, s, "cart-b", newEvent("b2", syncserver.EventCartUpdated, "cart-b", stamp(4)))

	want := []string{"evt_leased-1", "evt_tried-1", "evt_leased-2", "evt_tried-2", "evt_a3", "evt_b1", "evt_a6", "evt_b2"}
	got := waitFeed(t, s, "", len(want))
	if !slices.Equal(ids(got), want) {
		t.Errorf("feed = %q, want %q (coalesced events left out)", ids(got), want)
	}
	checkCounts(t, "after coalescing", s, 8, 0, 0, 4)
	for _, ev := range got {
		if ev.State != syncserver.EventPending {
			t.Errorf("event %s: state %q, want pending", ev.ID, ev.State)
		}
	}
}

// A coalescing event is due when the earliest event it replaced was, if
// that is sooner than its own time: a cart edited without pause, each edit
// pushing the next one's time back, still gets its event delivered.
func testEventsCoalesceKeepsTheFirstDue(t *testing.T, s commerceStore) {
	first := coalescing(newEvent("u1", syncserver.EventCartUpdated, "cart-busy", stamp(1)))
	first.NextAt = stamp(2)
	emit(t, s, "cart-busy", first)
	for i := range 5 {
		ev := coalescing(newEvent(fmt.Sprintf("u%d", i+2), syncserver.EventCartUpdated, "cart-busy", stamp(uint64(i+2))))
		ev.NextAt = stamp(uint64(i + 3))
		emit(t, s, "cart-busy", ev)
	}
	// At stamp(2), when the first was due, the last (due at stamp(7) by
	// its own time) goes out in its place.
	if got := claim(t, s, stamp(2).Add(time.Millisecond), time.Minute, 10); !slices.Equal(ids(got), []string{"evt_u6"}) {
		t.Fatalf("ClaimEvents when the first update was due = %q, want evt_u6 (the latest, in its place)", ids(got))
	}
}

// An event written delivered (a server without webhooks) is in the feed
// and never claimed.
func testEventsWrittenDelivered(t *testing.T, s commerceStore) {
	ev := newEvent("done", syncserver.EventCartCreated, "cart-d", stamp(1))
	ev.State = syncserver.EventDelivered
	emit(t, s, "cart-d", ev)
	if got := waitFeed(t, s, "", 1); len(got) != 1 || got[0].State != syncserver.EventDelivered {
		t.Fatalf("feed = %+v, want the event, delivered", got)
	}
	if got := claim(t, s, stamp(10), time.Minute, 10); len(got) != 0 {
		t.Fatalf("ClaimEvents = %q, want nothing", ids(got))
	}
}

// The feed never skips an event that commits after a later one was read:
// a Mutate holds its transaction open while another cart's commits, the
// feed is read, then the first commits; reading on from the cursor gives
// it.
func testEventsFeedNeverSkips(t *testing.T, s commerceStore) {
	emit(t, s, "cart-0", newEvent("zero", syncserver.EventCartCreated, "cart-0", stamp(1)))
	start := waitFeed(t, s, "", 1)
	if len(start) != 1 {
		t.Fatalf("feed = %q, want evt_zero", ids(start))
	}
	cursor := start[0].Cursor

	entered, release := make(chan struct{}), make(chan struct{})
	backstop := time.AfterFunc(feedWait, func() { close(release) })
	slowDone := make(chan error, 1)
	go func() {
		slowDone <- s.Mutate(t.Context(), "cart-slow", []string{"c1"}, func(rec *syncserver.Record) error {
			if err := applyOne(rec, addOp("c1", 1, "mug", 1)); err != nil {
				return err
			}
			rec.Events = append(rec.Events, newEvent("slow", syncserver.EventCartCreated, "cart-slow", stamp(2)))
			close(entered)
			<-release
			return nil
		})
	}()
	select {
	case <-entered:
	case err := <-slowDone:
		t.Fatalf("slow Mutate: %v", err)
	}
	fastDone := make(chan error, 1)
	go func() {
		fastDone <- s.Mutate(t.Context(), "cart-fast", nil, withEvents([]syncserver.Event{
			newEvent("fast", syncserver.EventCartCreated, "cart-fast", stamp(3))}))
	}()
	// A store that runs one write at a time holds the fast Mutate until
	// the slow one commits; the others commit it now.
	fastCommitted := false
	select {
	case err := <-fastDone:
		if err != nil {
			t.Fatalf("fast Mutate: %v", err)
		}
		fastCommitted = true
	case <-time.After(time.Second):
	}
	first := feedAll(t, s, cursor)
	t.Logf("fast Mutate committed while the slow one held its cart: %v; the feed then read %q", fastCommitted, ids(first))
	if len(first) > 0 {
		cursor = first[len(first)-1].Cursor
	}
	if backstop.Stop() {
		close(release)
	}
	if err := <-slowDone; err != nil {
		t.Fatalf("slow Mutate: %v", err)
	}
	if !fastCommitted {
		if err := <-fastDone; err != nil {
			t.Fatalf("fast Mutate: %v", err)
		}
	}
	rest := waitFeed(t, s, cursor, 2-len(first))
	got := ids(append(first, rest...))
	slices.Sort(got)
	if want := []string{"evt_fast", "evt_slow"}; !slices.Equal(got, want) {
		t.Errorf("feed read before and after the slow commit = %q then %q; want evt_fast and evt_slow once each", ids(first), ids(rest))
	}
}

// beyond returns cursors made from cursor with one of its decimal numbers
// multiplied by a million, for each of them, and one with all of them so
// multiplied: each past every cursor the store gave (cursors are opaque,
// but those of every store here are made of numbers that grow).
func beyond(cursor string) []string {
	var ends []int // where each number ends
	for i := range len(cursor) {
		if digit(cursor[i]) && (i+1 == len(cursor) || !digit(cursor[i+1])) {
			ends = append(ends, i+1)
		}
	}
	grow := func(at ...int) string {
		out, from := "", 0
		for _, e := range at {
			out += cursor[from:e] + "000000"
			from = e
		}
		return out + cursor[from:]
	}
	var out []string
	for _, e := range ends {
		out = append(out, grow(e))
	}
	if len(ends) > 1 {
		out = append(out, grow(ends...))
	}
	return out
}

func digit(c byte) bool { return c >= '0' && c <= '9' }

// The feed refuses a cursor it never gave, ErrBadCursor: one that is not a
// cursor, and one past every cursor it gave, rather than answering an
// empty page forever. The last cursor given reads an empty page.
func testEventsCursorNotGiven(t *testing.T, s commerceStore) {
	c1 := newEvent("c1", syncserver.EventCartCreated, "cart-c", stamp(1))
	c2 := newEvent("c2", syncserver.EventCartUpdated, "cart-c", stamp(1))
	c1.State, c2.State = syncserver.EventDelivered, syncserver.EventDelivered // to prune them below
	emit(t, s, "cart-c", c1, c2)
	evs := waitFeed(t, s, "", 2)
	if len(evs) != 2 {
		t.Fatalf("feed = %q, want evt_c1 and evt_c2", ids(evs))
	}
	last := evs[1].Cursor
	if got, err := s.EventsAfter(t.Context(), last, 10); err != nil || len(got) != 0 {
		t.Errorf("EventsAfter(the last cursor %q) = %q, %v; want nothing", last, ids(got), err)
	}
	for _, c := range append([]string{"garbage", "-1"}, append(beyond(last), beyond(evs[0].Cursor)...)...) {
		if got, err := s.EventsAfter(t.Context(), c, 10); !errors.Is(err, syncserver.ErrBadCursor) {
			t.Errorf("EventsAfter(%q), the last cursor given being %q = %q, %v; want ErrBadCursor", c, last, ids(got), err)
		}
	}
	// A cursor given before events were pruned is still good.
	if n, err := s.PruneEvents(t.Context(), time.Now().Add(time.Hour), 10, false); err != nil || n != 2 {
		t.Fatalf("PruneEvents = %d, %v; want 2", n, err)
	}
	if got, err := s.EventsAfter(t.Context(), last, 10); err != nil || len(got) != 0 {
		t.Errorf("EventsAfter(%q) after the prune = %q, %v; want nothing", last, ids(got), err)
	}
}

// A settled Purge (a server that delivers no events) writes its
// cart.expired events delivered, so that the retention prunes them.
func testEventsPurgeSettled(t *testing.T, s commerceStore) {
	makeCart(t, s, "guest-old", syncserver.KindGuest, stamp(1))
	expired, err := s.Purge(t.Context(), syncserver.KindGuest, stamp(10), keepTombstones, 10, true)
	if err != nil || len(expired) != 1 {
		t.Fatalf("Purge(settled) = %q, %v; want guest-old", expired, err)
	}
	got := waitFeed(t, s, "", 1)
	if len(got) != 1 || got[0].Type != syncserver.EventCartExpired || got[0].State != syncserver.EventDelivered {
		t.Fatalf("feed after a settled Purge = %+v, want cart.expired, delivered", got)
	}
	if evs, err := s.ClaimEvents(t.Context(), time.Now().Add(time.Hour), time.Minute, 10); err != nil || len(evs) != 0 {
		t.Errorf("ClaimEvents after a settled Purge = %q, %v; want nothing to deliver", ids(evs), err)
	}
}

// Purge writes a cart.expired event for each cart it expires, and none for
// the others.
func testEventsPurgeExpired(t *testing.T, s commerceStore) {
	makeCart(t, s, "guest-old", syncserver.KindGuest, stamp(1))
	makeCart(t, s, "guest-old-2", syncserver.KindGuest, stamp(2))
	makeCart(t, s, "guest-new", syncserver.KindGuest, stamp(20))
	makeCart(t, s, "user-old", syncserver.KindUser, stamp(1))
	before := time.Now()
	if got := purge(t, s, syncserver.KindGuest, stamp(10), keepTombstones, 100); !slices.Equal(got, []string{"guest-old", "guest-old-2"}) {
		t.Fatalf("Purge = %q, want guest-old and guest-old-2", got)
	}
	got := waitFeed(t, s, "", 2)
	if len(got) != 2 {
		t.Fatalf("feed after Purge = %q, want 2 events", ids(got))
	}
	slices.SortFunc(got, func(a, b syncserver.Event) int { return strings.Compare(a.CartID, b.CartID) })
	for i, id := range []string{"guest-old", "guest-old-2"} {
		ev := got[i]
		want := syncserver.ExpiredEvent(id, syncserver.KindGuest, ev.At, false)
		want.ID = ev.ID
		checkEvent(t, "feed after Purge", ev, want, syncserver.EventPending)
		if len(ev.ID) < 5 || ev.ID[:4] != "evt_" {
			t.Errorf("expired event id %q, want evt_ and hex", ev.ID)
		}
		if ev.At.Before(before.Add(-time.Second)) || ev.At.After(time.Now().Add(time.Second)) {
			t.Errorf("expired event of %s At = %v, want about now", id, ev.At)
		}
	}
	if got[0].ID == got[1].ID {
		t.Errorf("both expired events have id %s", got[0].ID)
	}
	purge(t, s, syncserver.KindGuest, stamp(10), keepTombstones, 100) // nothing left to expire
	emit(t, s, "guest-new", newEvent("after", syncserver.EventCartUpdated, "guest-new", stamp(21)))
	if all := waitFeed(t, s, "", 3); len(all) != 3 || all[2].ID != "evt_after" {
		t.Errorf("feed after a second Purge = %q, want the 2 expired events and evt_after", ids(all))
	}
}
