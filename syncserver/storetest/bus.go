package storetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// RunBus runs the Bus contract suite. open returns two buses standing for
// two server instances that share one backend (an in-process bus returns
// the same value twice), fresh for the test it is given and seeing nothing
// of other calls' messages. open closes them in t.Cleanup; the suite closes
// some earlier, so Close must tolerate a second call.
//
// The suite relies on what the contract promises: a message published
// after Subscribe returned reaches the subscriber, and the messages of one
// cart published one after the other from one instance arrive in that
// order.
func RunBus(t *testing.T, open func(t testing.TB) (a, b syncserver.Bus)) {
	tests := []struct {
		name string
		run  func(t *testing.T, a, b syncserver.Bus)
	}{
		{"ReachesBothInstances", testBusReachesBoth},
		{"OnlyThatCart", testBusOnlyThatCart},
		{"SeveralSubscribers", testBusSeveralSubscribers},
		{"Cancel", testBusCancel},
		{"CancelIdempotent", testBusCancelIdempotent},
		{"Payloads", testBusPayloads},
		{"Order", testBusOrder},
		{"ConcurrentPublishers", testBusConcurrentPublishers},
		{"Ping", testBusPing},
		{"Close", testBusClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := open(t)
			tt.run(t, a, b)
		})
	}
}

// busWait bounds every wait for a delivery.
const busWait = 5 * time.Second

// busInbox collects what one subscriber receives. Its fn never blocks: past
// the buffer it records an overflow, which fails the next check.
type busInbox struct {
	name     string
	ch       chan []byte
	overflow atomic.Bool
}

func (in *busInbox) fn(payload []byte) {
	select {
	case in.ch <- bytes.Clone(payload):
	default:
		in.overflow.Store(true)
	}
}

// next returns the next payload, failing the test if none comes in time.
func (in *busInbox) next(t testing.TB) []byte {
	t.Helper()
	if in.overflow.Load() {
		t.Fatalf("%s: inbox overflowed", in.name)
	}
	select {
	case p := <-in.ch:
		return p
	case <-time.After(busWait):
		t.Fatalf("%s: nothing delivered within %s", in.name, busWait)
		return nil
	}
}

// expect checks that the next payloads are want, in order.
func (in *busInbox) expect(t testing.TB, want ...string) {
	t.Helper()
	for i, w := range want {
		if got := in.next(t); string(got) != w {
			t.Fatalf("%s: message %d = %s, want %s", in.name, i, busAbbrev(got), busAbbrev([]byte(w)))
		}
	}
}

// expectNone checks that nothing more has been delivered. Callers first
// wait for a later message on another subscriber of the same instance, so
// anything unwanted would have arrived by then.
func (in *busInbox) expectNone(t testing.TB) {
	t.Helper()
	if in.overflow.Load() {
		t.Fatalf("%s: inbox overflowed", in.name)
	}
	select {
	case p := <-in.ch:
		t.Errorf("%s: got unwanted message %s", in.name, busAbbrev(p))
	default:
	}
}

func busAbbrev(p []byte) string {
	if len(p) > 64 {
		return fmt.Sprintf("%q... (%d bytes)", p[:64], len(p))
	}
	return fmt.Sprintf("%q", p)
}

// subscribe subscribes a new busInbox to cartID on bus, cancelled in cleanup.
func busSubscribe(t testing.TB, bus syncserver.Bus, cartID, name string) (*busInbox, func()) {
	t.Helper()
	in := &busInbox{name: name, ch: make(chan []byte, 1024)}
	ctx, cancel := context.WithTimeout(t.Context(), busWait)
	defer cancel()
	stop, err := bus.Subscribe(ctx, cartID, in.fn)
	if err != nil {
		t.Fatalf("Subscribe(%q) for %s: %v", cartID, name, err)
	}
	if stop == nil {
		t.Fatalf("Subscribe(%q) for %s: nil cancel", cartID, name)
	}
	t.Cleanup(stop)
	return in, stop
}

func busPublish(t testing.TB, bus syncserver.Bus, cartID string, payload []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), busWait)
	defer cancel()
	if err := bus.Publish(ctx, cartID, payload); err != nil {
		t.Fatalf("Publish(%q, %s): %v", cartID, busAbbrev(payload), err)
	}
}

func testBusReachesBoth(t *testing.T, a, b syncserver.Bus) {
	onA, _ := busSubscribe(t, a, "cart-1", "subscriber on a")
	onB, _ := busSubscribe(t, b, "cart-1", "subscriber on b")

	busPublish(t, a, "cart-1", []byte("from a"))
	onA.expect(t, "from a")
	onB.expect(t, "from a")

	busPublish(t, b, "cart-1", []byte("from b"))
	onA.expect(t, "from b")
	onB.expect(t, "from b")
}

// A cart's subscribers get nothing of another cart, even one whose id
// starts with theirs.
func testBusOnlyThatCart(t *testing.T, a, b syncserver.Bus) {
	carts := []string{"cart-1", "cart-10"}
	subs := map[string][]*busInbox{}
	for _, id := range carts {
		for name, bus := range map[string]syncserver.Bus{"a": a, "b": b} {
			in, _ := busSubscribe(t, bus, id, id+" on "+name)
			subs[id] = append(subs[id], in)
		}
	}
	for _, id := range carts {
		busPublish(t, a, id, []byte("for "+id))
	}
	// Sentinels: a leaked message would have arrived before them.
	for _, id := range carts {
		busPublish(t, a, id, []byte("end"))
	}
	for _, id := range carts {
		for _, in := range subs[id] {
			in.expect(t, "for "+id, "end")
		}
	}
}

func testBusSeveralSubscribers(t *testing.T, a, b syncserver.Bus) {
	var all []*busInbox
	for i := range 3 {
		in, _ := busSubscribe(t, a, "cart-1", fmt.Sprintf("subscriber %d on a", i))
		all = append(all, in)
	}
	for i := range 2 {
		in, _ := busSubscribe(t, b, "cart-1", fmt.Sprintf("subscriber %d on b", i))
		all = append(all, in)
	}
	busPublish(t, a, "cart-1", []byte("hello"))
	busPublish(t, a, "cart-1", []byte("end"))
	for _, in := range all {
		in.expect(t, "hello", "end") // once each: no duplicates
	}
}

func testBusCancel(t *testing.T, a, b syncserver.Bus) {
	type pair struct{ keep, gone *busInbox }
	var pairs []pair
	var cancels []func()
	for name, bus := range map[string]syncserver.Bus{"a": a, "b": b} {
		keep, _ := busSubscribe(t, bus, "cart-1", "kept subscriber on "+name)
		gone, cancel := busSubscribe(t, bus, "cart-1", "cancelled subscriber on "+name)
		pairs = append(pairs, pair{keep, gone})
		cancels = append(cancels, cancel)
	}
	busPublish(t, a, "cart-1", []byte("before"))
	for _, p := range pairs {
		p.keep.expect(t, "before")
		p.gone.expect(t, "before")
	}

	for _, cancel := range cancels {
		cancel()
	}
	busPublish(t, a, "cart-1", []byte("after"))
	busPublish(t, a, "cart-1", []byte("end"))
	for _, p := range pairs {
		p.keep.expect(t, "after", "end")
		p.gone.expectNone(t)
	}

	// When every subscriber of a cart is gone, a new one still gets
	// what follows.
	lone, cancel := busSubscribe(t, b, "cart-2", "first subscriber of cart-2")
	cancel()
	again, _ := busSubscribe(t, b, "cart-2", "second subscriber of cart-2")
	busPublish(t, a, "cart-2", []byte("again"))
	again.expect(t, "again")
	lone.expectNone(t)
}

// Calling cancel more than once removes only that subscriber.
func testBusCancelIdempotent(t *testing.T, a, b syncserver.Bus) {
	for name, bus := range map[string]syncserver.Bus{"a": a, "b": b} {
		id := "cart-" + name
		gone, cancel := busSubscribe(t, bus, id, "cancelled subscriber on "+name)
		keep, _ := busSubscribe(t, bus, id, "kept subscriber on "+name)
		cancel()
		cancel()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(cancel)
		}
		wg.Wait()

		busPublish(t, a, id, []byte("still here"))
		keep.expect(t, "still here")
		gone.expectNone(t)
	}
}

func testBusPayloads(t *testing.T, a, b syncserver.Bus) {
	big := make([]byte, 200<<10)
	rnd := rand.NewChaCha8([32]byte{'c', 'a', 'r', 't'})
	_, _ = rnd.Read(big)

	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty", []byte{}},
		{"json", []byte(`{"type":"cart","version":7,"lines":[]}`)},
		{"binary", []byte{0, 1, 0xfe, 0xff, '\r', '\n', 0, '*', '$'}},
		{"utf8", []byte("größe – 尺寸 🛒")},
		{"200KiB", big},
		{"text 200KiB", []byte(strings.Repeat("0123456789abcdef", 200<<10/16))},
	}
	onA, _ := busSubscribe(t, a, "cart-1", "subscriber on a")
	onB, _ := busSubscribe(t, b, "cart-1", "subscriber on b")
	for _, from := range []syncserver.Bus{a, b} {
		for _, tt := range tests {
			sent := bytes.Clone(tt.payload)
			busPublish(t, from, "cart-1", sent)
			if !bytes.Equal(sent, tt.payload) {
				t.Errorf("%s: Publish changed the caller's payload", tt.name)
			}
			for _, in := range []*busInbox{onA, onB} {
				if got := in.next(t); !bytes.Equal(got, tt.payload) {
					t.Errorf("%s: %s got %s, want %s", tt.name, in.name, busAbbrev(got), busAbbrev(tt.payload))
				}
			}
		}
	}
}

// Messages published one after the other from one instance arrive in that
// order, per cart, on every instance.
func testBusOrder(t *testing.T, a, b syncserver.Bus) {
	const n = 200
	carts := []string{"cart-1", "cart-2"}
	subs := map[string][]*busInbox{}
	for _, id := range carts {
		for name, bus := range map[string]syncserver.Bus{"a": a, "b": b} {
			in, _ := busSubscribe(t, bus, id, id+" on "+name)
			subs[id] = append(subs[id], in)
		}
	}
	for i := range n {
		for _, id := range carts {
			busPublish(t, a, id, fmt.Appendf(nil, "%s #%d", id, i))
		}
	}
	for _, id := range carts {
		for _, in := range subs[id] {
			for i := range n {
				want := fmt.Sprintf("%s #%d", id, i)
				if got := in.next(t); string(got) != want {
					t.Fatalf("%s: got %s, want %q", in.name, busAbbrev(got), want)
				}
			}
		}
	}
}

// Two instances publishing on one cart at once: each one's messages keep
// their order, and none is lost.
func testBusConcurrentPublishers(t *testing.T, a, b syncserver.Bus) {
	const n = 100
	onA, _ := busSubscribe(t, a, "cart-1", "subscriber on a")
	onB, _ := busSubscribe(t, b, "cart-1", "subscriber on b")
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for name, bus := range map[string]syncserver.Bus{"a": a, "b": b} {
		wg.Go(func() {
			for i := range n {
				if err := bus.Publish(t.Context(), "cart-1", fmt.Appendf(nil, "%s %d", name, i)); err != nil {
					errs <- fmt.Errorf("publish from %s: %w", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, in := range []*busInbox{onA, onB} {
		nextOf := map[string]int{"a": 0, "b": 0}
		for range 2 * n {
			var from string
			var i int
			got := in.next(t)
			if _, err := fmt.Sscanf(string(got), "%s %d", &from, &i); err != nil {
				t.Fatalf("%s: unexpected message %s", in.name, busAbbrev(got))
			}
			if want, ok := nextOf[from]; !ok || i != want {
				t.Fatalf("%s: got %q, want message %d from %s next", in.name, got, want, from)
			}
			nextOf[from]++
		}
	}
}

func testBusPing(t *testing.T, a, b syncserver.Bus) {
	for name, bus := range map[string]syncserver.Bus{"a": a, "b": b} {
		if err := bus.Ping(t.Context()); err != nil {
			t.Errorf("Ping on %s: %v", name, err)
		}
	}
}

// After Close returns, the closed bus calls none of its subscribers; the
// other instance keeps working. A second Close is harmless.
func testBusClose(t *testing.T, a, b syncserver.Bus) {
	closed, cancel := busSubscribe(t, a, "cart-1", "subscriber on the closed bus")
	var other *busInbox
	if b != a {
		other, _ = busSubscribe(t, b, "cart-1", "subscriber on the other bus")
	}
	busPublish(t, a, "cart-1", []byte("before"))
	closed.expect(t, "before")

	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if other != nil {
		other.expect(t, "before")
		busPublish(t, b, "cart-1", []byte("after close"))
		other.expect(t, "after close")
	} else {
		// The same bus: Publish may refuse, but must not deliver.
		_ = b.Publish(t.Context(), "cart-1", []byte("after close"))
	}
	closed.expectNone(t)

	cancel() // cancelling after Close is harmless
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
