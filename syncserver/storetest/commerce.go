package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// Contract tests of the storefront's side of a store: the catalog
// (syncserver.CatalogStore) and the outbox's pruning here, the rest of the
// event outbox (syncserver.EventStore) in events.go and claim.go.

// commerceStore is a Store with a catalog and an outbox, as every store
// that serves is.
type commerceStore interface {
	syncserver.Store
	syncserver.CatalogStore
	syncserver.EventStore
}

// runCommerce runs the CatalogStore and EventStore contract on fresh stores
// from open, as RunStore runs the Store contract. A store that implements
// neither interface skips these tests, saying so (each adapter asserts at
// compile time that it implements them; a test's wrapper may hide them).
//
// Besides the interfaces' doc comments, the suite pins these semantics:
//   - Times (Item.UpdatedAt, Event.At and NextAt, leases) are kept to the
//     millisecond; an event's Data comes back as the same JSON value, not
//     necessarily the same bytes.
//   - An item with an empty SKU fails UpsertItems, and nothing of the call
//     is stored. SKUs are listed in the order of their bytes.
//   - A limit below 1 returns nothing.
//   - An event fn appends is due at its NextAt if set, else at its At. An
//     event id already in the outbox fails the Mutate, writing nothing.
//   - EventCounts has every state, at 0 if no event is in it.
//   - EventDelivered and EventFailed on an unknown seq are
//     ErrEventNotFound, and do nothing to an event no longer pending.
//   - The feed may lag behind the newest commits (the suite waits for
//     them), but never skips one.
//   - PruneEvents deletes in seq order. A pruned event is gone for every
//     method (its seq is unknown to EventDelivered and EventFailed), its
//     cursor still reads the feed after it, and its seq is never handed
//     out again.
func runCommerce(t *testing.T, open func(t testing.TB) syncserver.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s commerceStore)
	}{
		{"CatalogUpsertAndRead", testCatalogUpsertAndRead},
		{"CatalogDelete", testCatalogDelete},
		{"CatalogBulk", testCatalogBulk},
		{"CatalogUpsertAllOrNothing", testCatalogUpsertAllOrNothing},
		{"EventsFromMutate", testEventsFromMutate},
		{"EventsFromMerge", testEventsFromMerge},
		{"Erase", testErase},
		{"EraseDuringMerge", testEraseDuringMerge},
		{"EventsNotWrittenOnError", testEventsNotWrittenOnError},
		{"EventsCoalesce", testEventsCoalesce},
		{"EventsCoalesceKeepsTheFirstDue", testEventsCoalesceKeepsTheFirstDue},
		{"EventsWrittenDelivered", testEventsWrittenDelivered},
		{"EventsFeedNeverSkips", testEventsFeedNeverSkips},
		{"EventsCursorNotGiven", testEventsCursorNotGiven},
		{"EventsPurgeExpired", testEventsPurgeExpired},
		{"EventsPurgeSettled", testEventsPurgeSettled},
		{"IdleCartsAndAbandonedAt", testIdleCartsAndAbandonedAt},
		{"ClaimHeadPerCart", testClaimHeadPerCart},
		{"ClaimConcurrent", testClaimConcurrent},
		{"DeliveryStates", testDeliveryStates},
		{"ClaimTriedSince", testClaimTriedSince},
		{"PruneKeepsRecentlyDead", testPruneKeepsRecentlyDead},
		{"DeadEventsPaging", testDeadEventsPaging},
		{"EventsPrune", testEventsPrune},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			cs, ok := s.(commerceStore)
			if !ok {
				t.Skipf("SKIPPED: %T does not implement both syncserver.CatalogStore and syncserver.EventStore", s)
			}
			tt.run(t, cs)
		})
	}
}

// at1 and at2 are upsert times, with sub-millisecond digits.
var (
	at1 = epoch.Add(time.Hour)
	at2 = epoch.Add(2 * time.Hour)
)

func intp(n int) *int { return &n }

// item returns a sellable item of sku at price.
func item(sku string, price int64) cart.Item {
	return cart.Item{SKU: sku, Name: "Item " + sku, Price: price, Currency: "EUR", Sellable: true}
}

// itemString is the form in which items are compared, without UpdatedAt.
func itemString(it cart.Item) string {
	it.UpdatedAt = time.Time{}
	b, _ := json.Marshal(it)
	return string(b)
}

func checkItem(t testing.TB, what string, got cart.Item, want cart.Item, at time.Time) {
	t.Helper()
	if g, w := itemString(got), itemString(want); g != w {
		t.Errorf("%s: item\n got %s\nwant %s", what, g, w)
	}
	if !sameMilli(got.UpdatedAt, at) {
		t.Errorf("%s: UpdatedAt = %v, want %v to the millisecond", what, got.UpdatedAt, at)
	}
}

func upsert(t testing.TB, s commerceStore, at time.Time, items ...cart.Item) {
	t.Helper()
	if err := s.UpsertItems(t.Context(), items, at); err != nil {
		t.Fatalf("UpsertItems(%d items): %v", len(items), err)
	}
}

func items(t testing.TB, s commerceStore, skus ...string) map[string]cart.Item {
	t.Helper()
	m, err := s.Items(t.Context(), skus)
	if err != nil {
		t.Fatalf("Items(%d SKUs): %v", len(skus), err)
	}
	return m
}

func listItems(t testing.TB, s commerceStore, after string, limit int) []cart.Item {
	t.Helper()
	its, err := s.ListItems(t.Context(), after, limit)
	if err != nil {
		t.Fatalf("ListItems(%q, %d): %v", after, limit, err)
	}
	return its
}

func skusOf(its []cart.Item) []string {
	out := make([]string, len(its))
	for i, it := range its {
		out[i] = it.SKU
	}
	return out
}

// listAll pages through the whole catalog, page items at a time.
func listAll(t testing.TB, s commerceStore, page int) []cart.Item {
	t.Helper()
	var all []cart.Item
	after := ""
	for {
		its := listItems(t, s, after, page)
		if len(its) > page {
			t.Fatalf("ListItems(%q, %d) returned %d items", after, page, len(its))
		}
		if len(its) == 0 {
			return all
		}
		all = append(all, its...)
		after = its[len(its)-1].SKU
	}
}

// Items are stored whole, replaced by SKU, and listed in byte order of
// their SKUs.
func testCatalogUpsertAndRead(t *testing.T, s commerceStore) {
	mug := item("mug", 1250)
	mug.Image = "https://shop.example/mug.png"
	mug.Stock, mug.MaxPerOrder = intp(7), intp(3)
	hat := item("Hat", 2000)
	hat.Stock = intp(0)
	tee := item("é-tee", 1500) // in byte order, after every ASCII SKU
	zed := item("Zed", 99)
	zed.Sellable = false
	upsert(t, s, at1, mug, hat, tee, zed)

	got := items(t, s, "mug", "é-tee", "missing", "mug")
	if len(got) != 2 {
		t.Errorf("Items(mug, é-tee, missing, mug) has %d items, want 2: %v", len(got), got)
	}
	checkItem(t, "Items: mug", got["mug"], mug, at1)
	checkItem(t, "Items: é-tee", got["é-tee"], tee, at1)
	if len(items(t, s)) != 0 {
		t.Errorf("Items() with no SKUs: got some")
	}

	want := []string{"Hat", "Zed", "mug", "é-tee"}
	if all := listAll(t, s, 10); !slices.Equal(skusOf(all), want) {
		t.Errorf("ListItems = %q, want %q (byte order)", skusOf(all), want)
	}
	for _, tt := range []struct {
		after string
		limit int
		want  []string
	}{
		{"", 2, []string{"Hat", "Zed"}},
		{"Zed", 2, []string{"mug", "é-tee"}},
		{"Hat", 1, []string{"Zed"}},
		{"N", 10, []string{"Zed", "mug", "é-tee"}}, // after need not be a SKU
		{"é-tee", 10, nil},
		{"", 0, nil},
	} {
		if got := skusOf(listItems(t, s, tt.after, tt.limit)); !slices.Equal(got, tt.want) {
			t.Errorf("ListItems(%q, %d) = %q, want %q", tt.after, tt.limit, got, tt.want)
		}
	}

	// A second upsert replaces the whole item (fields it leaves unset
	// included) and its time; the others keep theirs.
	mug2 := item("mug", 1300)
	mug2.Sellable = false
	upsert(t, s, at2, mug2)
	got = items(t, s, "mug", "Hat")
	checkItem(t, "Items after replace: mug", got["mug"], mug2, at2)
	checkItem(t, "Items after replace: Hat", got["Hat"], hat, at1)
	if n := len(listAll(t, s, 3)); n != 4 {
		t.Errorf("ListItems after replace: %d items, want 4", n)
	}
	upsert(t, s, at2) // no items: nothing happens
	if n := len(listAll(t, s, 3)); n != 4 {
		t.Errorf("ListItems after an empty upsert: %d items, want 4", n)
	}
}

// DeleteItems counts the items that existed, each once.
func testCatalogDelete(t *testing.T, s commerceStore) {
	upsert(t, s, at1, item("a", 1), item("b", 2), item("c", 3))
	for _, tt := range []struct {
		skus []string
		want int
	}{
		{[]string{"a", "missing", "a"}, 1},
		{[]string{"a"}, 0},
		{nil, 0},
		{[]string{"b", "c"}, 2},
	} {
		n, err := s.DeleteItems(t.Context(), tt.skus)
		if err != nil || n != tt.want {
			t.Errorf("DeleteItems(%q) = %d, %v; want %d", tt.skus, n, err, tt.want)
		}
	}
	if got := items(t, s, "a", "b", "c"); len(got) != 0 {
		t.Errorf("Items after deleting everything = %v, want none", got)
	}
	if got := listAll(t, s, 10); len(got) != 0 {
		t.Errorf("ListItems after deleting everything = %q, want none", skusOf(got))
	}
	upsert(t, s, at2, item("a", 5)) // a deleted SKU can come back
	checkItem(t, "Items after re-adding a", items(t, s, "a")["a"], item("a", 5), at2)
}

// Thousands of items go in one call, and come back by SKU and by pages.
func testCatalogBulk(t *testing.T, s commerceStore) {
	const n = 5000
	all := make([]cart.Item, n)
	skus := make([]string, n)
	for i := range n {
		all[i] = item(fmt.Sprintf("bulk-%05d", i), int64(100+i))
		skus[i] = all[i].SKU
	}
	start := time.Now()
	upsert(t, s, at1, all...)
	t.Logf("UpsertItems(%d items) took %v", n, time.Since(start))

	got := items(t, s, skus...)
	if len(got) != n {
		t.Fatalf("Items(%d SKUs) has %d items", n, len(got))
	}
	for _, i := range []int{0, 499, 500, 501, 2718, n - 1} {
		checkItem(t, "Items: "+skus[i], got[skus[i]], all[i], at1)
	}
	listed := listAll(t, s, 1000)
	if !slices.Equal(skusOf(listed), skus) {
		t.Errorf("ListItems in pages of 1000: %d items, want the %d in SKU order", len(listed), n)
	}

	// Replace them all, again in one call.
	for i := range all {
		all[i].Price++
	}
	upsert(t, s, at2, all...)
	got = items(t, s, skus[n-1], skus[0])
	checkItem(t, "Items after the second upsert: "+skus[0], got[skus[0]], all[0], at2)
	checkItem(t, "Items after the second upsert: "+skus[n-1], got[skus[n-1]], all[n-1], at2)
	if d, err := s.DeleteItems(t.Context(), skus); err != nil || d != n {
		t.Errorf("DeleteItems(%d SKUs) = %d, %v; want %d", n, d, err, n)
	}
}

// An upsert that fails partway stores none of its items.
func testCatalogUpsertAllOrNothing(t *testing.T, s commerceStore) {
	keep := item("keep", 100)
	upsert(t, s, at1, keep)
	var batch []cart.Item
	changed := keep
	changed.Price = 200
	batch = append(batch, changed)
	for i := range 200 {
		batch = append(batch, item(fmt.Sprintf("new-%03d", i), 1))
	}
	batch = append(batch, cart.Item{Name: "no SKU", Price: 1, Currency: "EUR"}) // fails the call
	for i := 200; i < 400; i++ {
		batch = append(batch, item(fmt.Sprintf("new-%03d", i), 1))
	}
	if err := s.UpsertItems(t.Context(), batch, at2); err == nil {
		t.Fatal("UpsertItems with an item without SKU: got no error")
	}
	checkItem(t, "Items(keep) after the failed upsert", items(t, s, "keep")["keep"], keep, at1)
	if got := listAll(t, s, 100); !slices.Equal(skusOf(got), []string{"keep"}) {
		t.Errorf("ListItems after the failed upsert = %d items %q..., want only keep", len(got), skusOf(got)[:min(len(got), 3)])
	}
}

func prune(t testing.TB, s syncserver.EventStore, cutoff time.Time, limit int) int {
	t.Helper()
	n, err := s.PruneEvents(t.Context(), cutoff, limit, false)
	if err != nil {
		t.Fatalf("PruneEvents(%v, %d): %v", cutoff, limit, err)
	}
	return n
}

// pruneFixture emits ten events (see its comments) and settles them as
// testEventsPrune needs; it returns each event's feed cursor and seq by
// id.
func pruneFixture(t *testing.T, s commerceStore, now time.Time) (cursor map[string]string, seqs map[string]int64) {
	upd := func(name, cartID string, at time.Time) syncserver.Event {
		return coalescing(newEvent(name, syncserver.EventCartUpdated, cartID, at))
	}
	// In seq order; c1 and c2 are coalesced by the next event of cart-c.
	evs := []syncserver.Event{
		newEvent("d1", syncserver.EventCartCreated, "cart-d", stamp(1)),
		newEvent("p1", syncserver.EventCartCreated, "cart-p", stamp(2)),
		upd("c1", "cart-c", stamp(3)),
		newEvent("x1", syncserver.EventCartCreated, "cart-x", stamp(4)),
		newEvent("d2", syncserver.EventCheckoutCreated, "cart-d", stamp(5)),
		upd("c2", "cart-c", stamp(6)),
		upd("c3", "cart-c", stamp(7)),
		newEvent("d3", syncserver.EventCheckoutCompleted, "cart-d", stamp(20)),
		newEvent("q1", syncserver.EventCartCreated, "cart-q", stamp(21)),
		newEvent("d4", syncserver.EventCartUpdated, "cart-d", stamp(22)),
	}
	for _, ev := range evs {
		emit(t, s, ev.CartID, ev)
	}
	feed := waitFeed(t, s, "", 8)
	if want := []string{"evt_d1", "evt_p1", "evt_x1", "evt_d2", "evt_c3", "evt_d3", "evt_q1", "evt_d4"}; !slices.Equal(ids(feed), want) {
		t.Fatalf("feed = %q, want %q", ids(feed), want)
	}
	cursor = map[string]string{}
	for _, ev := range feed {
		cursor[ev.ID] = ev.Cursor
	}

	// Deliver the d events, kill x1, fail p1 and c3 (pending, due again
	// tomorrow), and leave q1 and d4 leased for an hour.
	seqs = map[string]int64{}
	for round := 0; ; round++ {
		got := claim(t, s, now, time.Hour, 10)
		if len(got) == 0 {
			break
		}
		if round == 10 {
			t.Fatalf("claim round %d still got %q", round, ids(got))
		}
		for _, ev := range got {
			seqs[ev.ID] = ev.Seq
			var err error
			switch ev.ID {
			case "evt_d1", "evt_d2", "evt_d3":
				err = s.EventDelivered(t.Context(), ev.Seq, now)
			case "evt_x1":
				err = s.EventFailed(t.Context(), ev.Seq, now, "410 gone", true)
			case "evt_p1", "evt_c3":
				err = s.EventFailed(t.Context(), ev.Seq, now.Add(24*time.Hour), "503", false)
			}
			if err != nil {
				t.Fatalf("outcome of %s: %v", ev.ID, err)
			}
		}
	}
	return cursor, seqs
}

// PruneEvents deletes old events that are no longer pending, in seq order,
// a limited batch at a time, and never a pending one; the feed, claims and
// delivery outcomes carry on around the gaps.
func testEventsPrune(t *testing.T, s commerceStore) {
	now := time.Now()
	later := now.Add(48 * time.Hour) // after every event's At
	cursor, seqs := pruneFixture(t, s, now)
	checkCounts(t, "before pruning", s, 4, 3, 1, 2)

	for _, limit := range []int{0, -1} {
		if n, err := s.PruneEvents(t.Context(), later, limit, false); err != nil || n != 0 {
			t.Errorf("PruneEvents(later, %d) = %d, %v; want 0", limit, n, err)
		}
	}
	checkCounts(t, "after pruning with limits below 1", s, 4, 3, 1, 2)
	if n := prune(t, s, stamp(1), 10); n != 0 {
		t.Errorf("PruneEvents(d1's At, 10) = %d, want 0 (nothing before it)", n)
	}

	// Before stamp(10): d1, c1, d2 and c2, in seq order. x1 is as old,
	// but it died now: a dead event is kept for the retention from its
	// last series of attempts.
	for _, step := range []struct {
		limit, want                         int
		pending, delivered, dead, coalesced int64
	}{
		{2, 2, 4, 2, 1, 1}, // d1, c1
		{2, 2, 4, 1, 1, 0}, // d2, c2
		{10, 0, 4, 1, 1, 0},
	} {
		what := fmt.Sprintf("PruneEvents(stamp(10), %d)", step.limit)
		if n := prune(t, s, stamp(10), step.limit); n != step.want {
			t.Errorf("%s = %d, want %d", what, n, step.want)
		}
		checkCounts(t, "after "+what, s, step.pending, step.delivered, step.dead, step.coalesced)
	}

	// The feed reads on from a pruned event's cursor, and from the start.
	rest := []string{"evt_p1", "evt_x1", "evt_c3", "evt_d3", "evt_q1", "evt_d4"}
	for _, tt := range []struct {
		after string
		want  []string
	}{
		{"", rest},
		{"evt_d1", rest},
		{"evt_x1", rest[2:]},
		{"evt_d2", rest[2:]},
		{"evt_c3", rest[3:]},
		{"evt_d4", nil},
	} {
		if got := feedAll(t, s, cursor[tt.after]); !slices.Equal(ids(got), tt.want) {
			t.Errorf("feed after %q's cursor = %q, want %q", tt.after, ids(got), tt.want)
		}
	}
	if got, err := s.EventsAfter(t.Context(), cursor["evt_d1"], 1); err != nil || !slices.Equal(ids(got), rest[:1]) {
		t.Errorf("EventsAfter(d1's cursor, 1) = %q, %v; want [evt_p1]", ids(got), err)
	}

	// Pruned events are gone for the delivery side too.
	if err := s.EventDelivered(t.Context(), seqs["evt_d1"], now); !errors.Is(err, syncserver.ErrEventNotFound) {
		t.Errorf("EventDelivered(pruned d1) = %v, want ErrEventNotFound", err)
	}

	// Pending events stay, whatever the cutoff; claims still find them.
	if n := prune(t, s, later, 10); n != 2 {
		t.Errorf("PruneEvents(later, 10) = %d, want 2 (x1, d3)", n)
	}
	checkCounts(t, "after pruning everything but the pending events", s, 4, 0, 0, 0)
	if err := s.EventFailed(t.Context(), seqs["evt_x1"], now, "x", true); !errors.Is(err, syncserver.ErrEventNotFound) {
		t.Errorf("EventFailed(pruned x1) = %v, want ErrEventNotFound", err)
	}
	if err := s.RetryEvent(t.Context(), "evt_x1"); !errors.Is(err, syncserver.ErrEventNotFound) {
		t.Errorf("RetryEvent(pruned x1) = %v, want ErrEventNotFound", err)
	}
	if dead, err := s.DeadEvents(t.Context(), 0, 10); err != nil || len(dead) != 0 {
		t.Errorf("DeadEvents after pruning x1 = %q, %v; want none", ids(dead), err)
	}
	if got := claim(t, s, now.Add(2*time.Hour), time.Hour, 10); !slices.Equal(ids(got), []string{"evt_q1", "evt_d4"}) {
		t.Errorf("claim after the leases ended = %q, want [evt_q1 evt_d4]", ids(got))
	}
	got := claim(t, s, now.Add(25*time.Hour), time.Hour, 10)
	if want := []string{"evt_p1", "evt_c3", "evt_q1", "evt_d4"}; !slices.Equal(ids(got), want) {
		t.Fatalf("claim when every pending event is due = %q, want %q", ids(got), want)
	}
	if got[0].Attempts != 1 || got[0].LastError != "503" {
		t.Errorf("claimed p1 has %d attempts, last error %q; want 1 and 503", got[0].Attempts, got[0].LastError)
	}

	// Pruning the newest event does not give its seq to the next one.
	if err := s.EventDelivered(t.Context(), got[3].Seq, now); err != nil {
		t.Fatalf("EventDelivered(d4): %v", err)
	}
	if n := prune(t, s, later, 10); n != 1 {
		t.Errorf("PruneEvents(later, 10) after delivering d4 = %d, want 1", n)
	}
	emit(t, s, "cart-e", newEvent("e1", syncserver.EventCartCreated, "cart-e", stamp(30)))
	after := waitFeed(t, s, cursor["evt_d4"], 1)
	if len(after) != 1 || after[0].ID != "evt_e1" || after[0].Seq <= got[3].Seq {
		t.Errorf("feed after pruned d4's cursor (seq %d) = %+v, want evt_e1 with a greater seq", got[3].Seq, after)
	}
	checkCounts(t, "at the end", s, 4, 0, 0, 0)

	// With pending (a server without a deliverer), old pending events go
	// too, claimed or not; a newer one stays.
	if n, err := s.PruneEvents(t.Context(), stamp(25), 10, true); err != nil || n != 3 {
		t.Errorf("PruneEvents(stamp(25), 10, pending) = %d, %v; want 3 (p1, c3, q1)", n, err)
	}
	checkCounts(t, "after pruning pending events too", s, 1, 0, 0, 0)
}
