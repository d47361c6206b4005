package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// Contract tests of the outbox's delivery side: claims in cart order under
// leases, shared by concurrent claimers; the outcomes of deliveries; and
// the idle carts the abandonment sweep looks for.

func claim(t testing.TB, s syncserver.EventStore, now time.Time, lease time.Duration, limit int) []syncserver.Event {
	t.Helper()
	evs, err := s.ClaimEvents(t.Context(), now, lease, limit)
	if err != nil {
		t.Fatalf("ClaimEvents(%v, %v, %d): %v", now, lease, limit, err)
	}
	return evs
}

// A claim gets only the oldest pending event of each cart, due and not
// leased, in seq order, at most limit; the lease holds it from other claims
// until it ends.
func testClaimHeadPerCart(t *testing.T, s commerceStore) {
	base := time.Now()
	past := base.Add(-time.Minute)
	a1 := newEvent("a1", syncserver.EventCartCreated, "cart-a", past)
	a2 := newEvent("a2", syncserver.EventCartUpdated, "cart-a", past)
	b1 := newEvent("b1", syncserver.EventCartCreated, "cart-b", past)
	c1 := newEvent("c1", syncserver.EventCartCreated, "cart-c", past)
	c1.NextAt = base.Add(time.Minute)
	emit(t, s, "cart-a", a1, a2)
	emit(t, s, "cart-b", b1)
	emit(t, s, "cart-c", c1)
	const lease = 30 * time.Second

	step := func(what string, at time.Duration, limit int, want ...syncserver.Event) []syncserver.Event {
		t.Helper()
		got := claim(t, s, base.Add(at), lease, limit)
		if !slices.Equal(ids(got), ids(want)) {
			t.Fatalf("%s: ClaimEvents(base+%v, limit %d) = %q, want %q", what, at, limit, ids(got), ids(want))
		}
		for i := range got {
			checkEvent(t, what, got[i], want[i], syncserver.EventPending)
			if got[i].Attempts != 0 {
				t.Errorf("%s: event %s Attempts = %d, want 0", what, got[i].ID, got[i].Attempts)
			}
		}
		return got
	}
	first := step("first claim: the head of each cart that is due", 0, 10, a1, b1)
	step("claimed again at once", 0, 10)
	step("1 s before the lease ends", lease-time.Second, 10)
	step("the lease ended, limit 1", lease, 1, a1)
	step("the lease ended", lease, 10, b1)
	if err := s.EventDelivered(t.Context(), first[0].Seq, base.Add(lease+time.Second)); err != nil {
		t.Fatalf("EventDelivered(a1): %v", err)
	}
	step("a1 delivered: a2 is cart-a's head", lease+time.Second, 10, a2)
	step("1 ms before c1 is due and b1's lease ends", 2*lease-time.Millisecond, 10)
	step("c1 due and b1's lease ended", 2*lease, 10, b1, c1)
	step("a limit of 0", 10*lease, 0)
}

// Claimers running at once never get the same event, and between them get
// every cart's head.
func testClaimConcurrent(t *testing.T, s commerceStore) {
	const carts, claimers = 40, 6
	now := time.Now()
	heads := map[string]bool{}
	var tails []string
	for i := range carts {
		id := fmt.Sprintf("cart-%02d", i)
		evs := []syncserver.Event{newEvent(fmt.Sprintf("head-%02d", i), syncserver.EventCartCreated, id, stamp(1))}
		heads[evs[0].ID] = true
		if i%4 == 0 {
			evs = append(evs, newEvent(fmt.Sprintf("tail-%02d", i), syncserver.EventCartUpdated, id, stamp(2)))
			tails = append(tails, evs[1].ID)
		}
		emit(t, s, id, evs...)
	}

	got := make([][]syncserver.Event, claimers)
	errs := make([]error, claimers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range claimers {
		wg.Go(func() {
			<-start
			for {
				evs, err := s.ClaimEvents(t.Context(), now, time.Hour, 3)
				if err != nil {
					errs[i] = err
					return
				}
				if len(evs) == 0 {
					return
				}
				got[i] = append(got[i], evs...)
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("ClaimEvents: %v", err)
	}
	seen := map[string]int{}
	var seqs []int64
	for i, evs := range got {
		for _, ev := range evs {
			if n, dup := seen[ev.ID]; dup {
				t.Errorf("event %s claimed by claimers %d and %d", ev.ID, n, i)
			}
			seen[ev.ID] = i
			if !heads[ev.ID] {
				t.Errorf("claimer %d got %s, not the head of its cart", i, ev.ID)
			}
			seqs = append(seqs, ev.Seq)
		}
	}
	if len(seen) != len(heads) {
		t.Errorf("claimers got %d events, want the %d heads", len(seen), len(heads))
	}
	if evs := claim(t, s, now, time.Hour, 100); len(evs) != 0 {
		t.Errorf("claim after the claimers = %q, want none (every head leased)", ids(evs))
	}
	for _, seq := range seqs {
		if err := s.EventDelivered(t.Context(), seq, now); err != nil {
			t.Fatalf("EventDelivered(%d): %v", seq, err)
		}
	}
	if evs := claim(t, s, now, time.Hour, 100); !slices.Equal(ids(evs), tails) {
		t.Errorf("claim after delivering the heads = %q, want the second events %q", ids(evs), tails)
	}
}

// A failed delivery counts an attempt and makes the event due again at the
// time given, or dead; RetryEvent brings a dead one back; an outcome
// reported for an event no longer pending changes nothing.
func testDeliveryStates(t *testing.T, s commerceStore) {
	base := time.Now()
	past := base.Add(-time.Minute)
	x1 := newEvent("x1", syncserver.EventCartCreated, "cart-x", past)
	x2 := newEvent("x2", syncserver.EventCheckoutCreated, "cart-x", past)
	y1 := newEvent("y1", syncserver.EventCartCreated, "cart-y", past)
	emit(t, s, "cart-x", x1, x2)
	emit(t, s, "cart-y", y1)
	const lease = 30 * time.Second
	got := claim(t, s, base, lease, 10)
	if !slices.Equal(ids(got), []string{"evt_x1", "evt_y1"}) {
		t.Fatalf("ClaimEvents = %q, want evt_x1 and evt_y1", ids(got))
	}
	xs, ys := got[0].Seq, got[1].Seq

	if err := s.EventFailed(t.Context(), xs, base.Add(10*time.Second), "timeout", false); err != nil {
		t.Fatalf("EventFailed(x1): %v", err)
	}
	if evs := claim(t, s, base.Add(5*time.Second), lease, 10); len(evs) != 0 {
		t.Errorf("claim before x1 is due again = %q, want none (x2 waits for x1)", ids(evs))
	}
	got = claim(t, s, base.Add(10*time.Second), lease, 10)
	if len(got) != 1 || got[0].ID != "evt_x1" || got[0].Attempts != 1 || got[0].LastError != "timeout" ||
		!sameMilli(got[0].NextAt, base.Add(10*time.Second)) {
		t.Fatalf("claim when x1 is due again = %+v, want x1 with 1 attempt, last error timeout, due at base+10s", got)
	}
	if err := s.EventFailed(t.Context(), xs, base.Add(20*time.Second), "410 gone", true); err != nil {
		t.Fatalf("EventFailed(x1, dead): %v", err)
	}
	if evs := claim(t, s, base.Add(10*time.Second), lease, 10); !slices.Equal(ids(evs), []string{"evt_x2"}) {
		t.Errorf("claim after x1 died = %q, want evt_x2 (a dead event holds nothing up)", ids(evs))
	}
	dead, err := s.DeadEvents(t.Context(), 0, 10)
	if err != nil || len(dead) != 1 {
		t.Fatalf("DeadEvents = %q, %v; want evt_x1", ids(dead), err)
	}
	checkEvent(t, "DeadEvents", dead[0], x1, syncserver.EventDead)
	if dead[0].Attempts != 2 || dead[0].LastError != "410 gone" || dead[0].Seq != xs {
		t.Errorf("DeadEvents: x1 has seq %d, %d attempts, last error %q; want %d, 2, 410 gone", dead[0].Seq, dead[0].Attempts, dead[0].LastError, xs)
	}

	// Outcomes for events no longer pending, or unknown.
	for i := range 2 {
		if err := s.EventDelivered(t.Context(), ys, base.Add(time.Duration(11+i)*time.Second)); err != nil {
			t.Errorf("EventDelivered(y1) #%d: %v", i+1, err)
		}
	}
	if err := s.EventFailed(t.Context(), ys, base, "late", true); err != nil {
		t.Errorf("EventFailed(y1) after its delivery: %v", err)
	}
	if err := s.EventDelivered(t.Context(), xs, base); err != nil {
		t.Errorf("EventDelivered(x1) while dead: %v", err)
	}
	const unknown = 1 << 40
	if err := s.EventDelivered(t.Context(), unknown, base); !errors.Is(err, syncserver.ErrEventNotFound) {
		t.Errorf("EventDelivered(unknown seq) = %v, want ErrEventNotFound", err)
	}
	if err := s.EventFailed(t.Context(), unknown, base, "x", false); !errors.Is(err, syncserver.ErrEventNotFound) {
		t.Errorf("EventFailed(unknown seq) = %v, want ErrEventNotFound", err)
	}
	for _, id := range []string{"evt_nope", x2.ID, y1.ID} {
		if err := s.RetryEvent(t.Context(), id); !errors.Is(err, syncserver.ErrEventNotFound) {
			t.Errorf("RetryEvent(%s), not dead = %v, want ErrEventNotFound", id, err)
		}
	}
	checkCounts(t, "x1 dead, x2 pending, y1 delivered", s, 1, 1, 1, 0)

	if err := s.RetryEvent(t.Context(), x1.ID); err != nil {
		t.Fatalf("RetryEvent(x1): %v", err)
	}
	if dead, err := s.DeadEvents(t.Context(), 0, 10); err != nil || len(dead) != 0 {
		t.Errorf("DeadEvents after the retry = %q, %v; want none", ids(dead), err)
	}
	checkCounts(t, "after the retry", s, 2, 1, 0, 0)
	got = claim(t, s, time.Now().Add(time.Second), lease, 10)
	if len(got) != 1 || got[0].ID != "evt_x1" || got[0].Attempts != 0 {
		t.Fatalf("claim after the retry = %+v, want x1, due at once, with no attempts", got)
	}
	if err := s.EventDelivered(t.Context(), got[0].Seq, base); err != nil {
		t.Errorf("EventDelivered(x1): %v", err)
	}
	// x2's claim was not delivered: it is still pending.
	checkCounts(t, "x1 and y1 delivered", s, 1, 2, 0, 0)
	states := map[string]string{}
	for _, ev := range waitFeed(t, s, "", 3) {
		states[ev.ID] = ev.State
	}
	want := map[string]string{"evt_x1": syncserver.EventDelivered, "evt_x2": syncserver.EventPending, "evt_y1": syncserver.EventDelivered}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("states in the feed = %v, want %v", states, want)
	}
}

// A claim of an event with no failed attempt starts its series of attempts
// (TriedSince, which the retry window counts from), however old the event;
// failed attempts keep the series; RetryEvent ends it, so the next claim
// starts a new one.
func testClaimTriedSince(t *testing.T, s commerceStore) {
	base := time.Now()
	created := base.Add(-48 * time.Hour)
	emit(t, s, "cart-t", newEvent("t1", syncserver.EventCartCreated, "cart-t", created))
	const lease = time.Minute
	// claimT claims at now and returns the event, failing the test unless
	// it is the only one claimed.
	claimT := func(what string, now time.Time) syncserver.Event {
		t.Helper()
		got := claim(t, s, now, lease, 10)
		if len(got) != 1 || got[0].ID != "evt_t1" {
			t.Fatalf("%s: ClaimEvents = %q, want evt_t1", what, ids(got))
		}
		return got[0]
	}
	checkSince := func(what string, ev syncserver.Event, want time.Time) {
		t.Helper()
		if !sameMilli(ev.TriedSince, want) {
			t.Errorf("%s: TriedSince %v, want %v", what, ev.TriedSince, want)
		}
	}

	first := claimT("first claim", base)
	checkSince("first claim of an event created two days before", first, base)
	// The lease ended without an outcome (an instance stopped): not an
	// attempt, so the next claim starts the series again.
	again := base.Add(2 * lease)
	checkSince("claim after a lease ended with no outcome", claimT("second claim", again), again)
	if err := s.EventFailed(t.Context(), first.Seq, again.Add(time.Second), "HTTP 503", false); err != nil {
		t.Fatalf("EventFailed: %v", err)
	}
	checkSince("claim after a failed attempt", claimT("third claim", again.Add(time.Hour)), again)
	if err := s.EventFailed(t.Context(), first.Seq, again.Add(time.Hour), "HTTP 503", true); err != nil {
		t.Fatalf("EventFailed, dead: %v", err)
	}
	if err := s.RetryEvent(t.Context(), first.ID); err != nil {
		t.Fatalf("RetryEvent: %v", err)
	}
	retried := time.Now().Add(3 * time.Hour)
	ev := claimT("claim after RetryEvent", retried)
	checkSince("claim after RetryEvent", ev, retried)
	if ev.Attempts != 0 {
		t.Errorf("claim after RetryEvent: %d attempts, want 0", ev.Attempts)
	}
}

// DeadEvents pages through dead events in seq order.
func testDeadEventsPaging(t *testing.T, s commerceStore) {
	now := time.Now()
	for i := range 6 {
		id := fmt.Sprintf("cart-%d", i)
		emit(t, s, id, newEvent(fmt.Sprintf("e%d", i), syncserver.EventCartCreated, id, stamp(1)))
	}
	var want []string
	for _, ev := range claim(t, s, now, time.Hour, 10) {
		if ev.ID == "evt_e1" {
			continue
		}
		if err := s.EventFailed(t.Context(), ev.Seq, now, "gone", true); err != nil {
			t.Fatalf("EventFailed(%s): %v", ev.ID, err)
		}
		want = append(want, ev.ID)
	}
	var got []string
	after := int64(0)
	for range 10 {
		page, err := s.DeadEvents(t.Context(), after, 2)
		if err != nil {
			t.Fatalf("DeadEvents(%d, 2): %v", after, err)
		}
		if len(page) > 2 {
			t.Fatalf("DeadEvents(%d, 2) returned %d events", after, len(page))
		}
		if len(page) == 0 {
			break
		}
		for _, ev := range page {
			if ev.State != syncserver.EventDead || ev.Seq <= after {
				t.Errorf("DeadEvents(%d): event %s, seq %d, state %q", after, ev.ID, ev.Seq, ev.State)
			}
			after = ev.Seq
		}
		got = append(got, ids(page)...)
	}
	if !slices.Equal(got, want) {
		t.Errorf("DeadEvents in pages of 2 = %q, want %q", got, want)
	}
	if page, err := s.DeadEvents(t.Context(), 0, 0); err != nil || len(page) != 0 {
		t.Errorf("DeadEvents(0, 0) = %q, %v; want none", ids(page), err)
	}
}

// setMeta runs a Mutate of id that sets its meta and nothing else.
func setMeta(t testing.TB, s syncserver.Store, id string, meta func(*syncserver.Meta)) {
	t.Helper()
	mutate(t, s, id, nil, func(rec *syncserver.Record) error {
		meta(&rec.Meta)
		return nil
	})
}

func idle(t testing.TB, s syncserver.EventStore, kind string, cutoff time.Time, limit int) []string {
	t.Helper()
	got, err := s.IdleCarts(t.Context(), kind, cutoff, limit)
	if err != nil {
		t.Fatalf("IdleCarts(%s, %v, %d): %v", kind, cutoff, limit, err)
	}
	return got
}

// IdleCarts lists the live, unmerged carts of a kind last changed before
// the cutoff with no abandonment recorded for that change, oldest first;
// Meta.AbandonedAt is kept like the other meta fields.
func testIdleCartsAndAbandonedAt(t *testing.T, s commerceStore) {
	cutoff := stamp(10)
	makeCart(t, s, "idle-1", syncserver.KindGuest, stamp(1))
	makeCart(t, s, "idle-2", syncserver.KindGuest, stamp(2))
	setMeta(t, s, "idle-2", func(m *syncserver.Meta) { m.AbandonedAt = stamp(1) }) // an earlier idle period
	makeCart(t, s, "abandoned", syncserver.KindGuest, stamp(3))
	setMeta(t, s, "abandoned", func(m *syncserver.Meta) { m.AbandonedAt = m.UpdatedAt })
	makeCart(t, s, "recent", syncserver.KindGuest, stamp(20))
	makeCart(t, s, "at-cutoff", syncserver.KindGuest, cutoff)
	makeCart(t, s, "user-1", syncserver.KindUser, stamp(1))
	makeCart(t, s, "user-expired", syncserver.KindUser, stamp(0))
	makeCart(t, s, "merged", syncserver.KindGuest, stamp(1))
	setMeta(t, s, "merged", func(m *syncserver.Meta) { m.MergedInto = "user-1" })
	makeCart(t, s, "no-time", syncserver.KindGuest, time.Time{})
	if got := purge(t, s, syncserver.KindUser, stamp(1), keepTombstones, 10); !slices.Equal(got, []string{"user-expired"}) {
		t.Fatalf("Purge(user) = %q, want user-expired", got)
	}

	for _, tt := range []struct {
		kind  string
		limit int
		want  []string
	}{
		{syncserver.KindGuest, 10, []string{"idle-1", "idle-2"}},
		{syncserver.KindGuest, 1, []string{"idle-1"}},
		{syncserver.KindGuest, 0, nil},
		{syncserver.KindUser, 10, []string{"user-1"}},
		{"other", 10, nil},
	} {
		if got := idle(t, s, tt.kind, cutoff, tt.limit); !slices.Equal(got, tt.want) {
			t.Errorf("IdleCarts(%s, limit %d) = %q, want %q", tt.kind, tt.limit, got, tt.want)
		}
	}

	// Recording the abandonment takes the cart out; Load and Mutate see it.
	setMeta(t, s, "idle-1", func(m *syncserver.Meta) { m.AbandonedAt = m.UpdatedAt })
	rec := load(t, s, "idle-1")
	if !sameMilli(rec.Meta.AbandonedAt, stamp(1)) || !sameMilli(rec.Meta.UpdatedAt, stamp(1)) {
		t.Errorf("Load(idle-1): meta %+v, want UpdatedAt and AbandonedAt %v", rec.Meta, stamp(1))
	}
	mutate(t, s, "idle-1", nil, func(rec *syncserver.Record) error {
		if !sameMilli(rec.Meta.AbandonedAt, stamp(1)) {
			t.Errorf("Mutate(idle-1) sees AbandonedAt %v, want %v", rec.Meta.AbandonedAt, stamp(1))
		}
		return nil
	})
	if got := idle(t, s, syncserver.KindGuest, cutoff, 10); !slices.Equal(got, []string{"idle-2"}) {
		t.Errorf("IdleCarts after recording idle-1's abandonment = %q, want [idle-2]", got)
	}
	// A change after it starts a new idle period.
	makeCart(t, s, "idle-1", syncserver.KindGuest, stamp(5))
	if got := idle(t, s, syncserver.KindGuest, cutoff, 10); !slices.Equal(got, []string{"idle-2", "idle-1"}) {
		t.Errorf("IdleCarts after idle-1 changed = %q, want [idle-2 idle-1]", got)
	}
	if rec := load(t, s, "idle-1"); !sameMilli(rec.Meta.AbandonedAt, stamp(1)) {
		t.Errorf("Load(idle-1) after a change: AbandonedAt %v, want it kept at %v", rec.Meta.AbandonedAt, stamp(1))
	}

	// Merge reads and writes it on both sides.
	err := s.Merge(t.Context(), "idle-2", "user-1", func(from, into *syncserver.Record) error {
		if !sameMilli(from.Meta.AbandonedAt, stamp(1)) || !into.Meta.AbandonedAt.IsZero() {
			t.Errorf("Merge sees AbandonedAt %v and %v, want %v and zero", from.Meta.AbandonedAt, into.Meta.AbandonedAt, stamp(1))
		}
		from.Meta.AbandonedAt = time.Time{}
		into.Meta.AbandonedAt = stamp(7)
		return loginMerge("user-1")(from, into)
	})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	if from, into := load(t, s, "idle-2"), load(t, s, "user-1"); !from.Meta.AbandonedAt.IsZero() || !sameMilli(into.Meta.AbandonedAt, stamp(7)) {
		t.Errorf("after Merge: AbandonedAt %v and %v, want zero and %v", from.Meta.AbandonedAt, into.Meta.AbandonedAt, stamp(7))
	}
	if got := idle(t, s, syncserver.KindGuest, cutoff, 10); !slices.Equal(got, []string{"idle-1"}) {
		t.Errorf("IdleCarts after idle-2 merged = %q, want [idle-1]", got)
	}
}

// testPruneKeepsRecentlyDead: a dead event is kept for the retention from
// the start of its last series of attempts, not from its creation: one
// written long ago that died lately (held up behind its cart's earlier
// events, or retried by hand) stays listed as dead.
func testPruneKeepsRecentlyDead(t *testing.T, s commerceStore) {
	now := time.Now()
	emit(t, s, "cart-d", newEvent("d1", syncserver.EventCartUpdated, "cart-d", now.Add(-10*24*time.Hour)))
	got := claim(t, s, now.Add(-time.Hour), time.Minute, 10)
	if len(got) != 1 {
		t.Fatalf("ClaimEvents = %q, want evt_d1", ids(got))
	}
	if err := s.EventFailed(t.Context(), got[0].Seq, now, "HTTP 503", true); err != nil {
		t.Fatalf("EventFailed, dead: %v", err)
	}
	if n, err := s.PruneEvents(t.Context(), now.Add(-7*24*time.Hour), 10, false); err != nil || n != 0 {
		t.Fatalf("PruneEvents(7 days ago) = %d, %v; want the event that died within the hour kept", n, err)
	}
	if dead, err := s.DeadEvents(t.Context(), 0, 10); err != nil || len(dead) != 1 {
		t.Fatalf("DeadEvents = %d, %v; want evt_d1", len(dead), err)
	}
	if n, err := s.PruneEvents(t.Context(), now, 10, false); err != nil || n != 1 {
		t.Errorf("PruneEvents(now) = %d, %v; want it pruned once its series is older than the cutoff", n, err)
	}
}

// ClaimTriedSinceOfOldRows checks, on a SQL store, that an event with
// failed attempts written before the store kept tried_since keeps the
// window it had (it counts from its At), while one never tried starts a
// series at its first claim. forget clears the tried_since of event id
// and gives it failed attempts, as a row from before the column reads.
func ClaimTriedSinceOfOldRows(t *testing.T, s interface {
	syncserver.Store
	syncserver.EventStore
}, forget func(id string) error) {
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	created := now.Add(-time.Hour)
	err := s.Mutate(ctx, "cart-old", nil, func(rec *syncserver.Record) error {
		rec.Events = append(rec.Events,
			syncserver.Event{ID: "evt_tried", Type: syncserver.EventCartCreated, CartID: "cart-old", At: created},
			syncserver.Event{ID: "evt_fresh", Type: syncserver.EventCartCreated, CartID: "cart-fresh", At: created})
		return nil
	})
	if err != nil {
		t.Fatalf("Mutate: %v", err)
	}
	if err := forget("evt_tried"); err != nil {
		t.Fatal(err)
	}
	evs, err := s.ClaimEvents(ctx, now, time.Minute, 10)
	if err != nil || len(evs) != 2 {
		t.Fatalf("ClaimEvents = %+v, %v; want both events", evs, err)
	}
	for _, ev := range evs {
		want := now
		if ev.ID == "evt_tried" {
			want = created
		}
		if !ev.TriedSince.Equal(want) {
			t.Errorf("%s: TriedSince %v, want %v", ev.ID, ev.TriedSince, want)
		}
	}
}
