package syncclient

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The server's answers that once took a hand-played server over a pipe
// (pushed carts with gaps, partial acks, errors without a request id,
// refused hellos, a rotated client id), as machine steps.

// serverSays is the input "msg arrived".
func serverSays(msg *protocol.Message) func(h *harness) func(*machine) {
	return func(h *harness) func(*machine) { return got(h, msg) }
}

// timerFires is the input "timer t fired".
func timerFires(t timerID) func(h *harness) func(*machine) {
	return func(h *harness) func(*machine) { return fire(h, t) }
}

// editedOp stores and shows op, then wakes the machine, as Engine.edit
// does.
func editedOp(op cart.Op) func(h *harness) func(*machine) {
	return func(h *harness) func(*machine) { h.edit(op); return woken(h) }
}

// reopened is the input "the connection ended and a new one opened".
func reopened(h *harness) func(*machine) {
	return func(m *machine) { m.stop(); m.start(h.now, "") }
}

// pushedCart is a cart the server pushes: c, made from version from by
// the ops by.
func pushedCart(from uint64, c *cart.Cart, by ...protocol.OpID) *protocol.Message {
	return &protocol.Message{Type: protocol.TypeCart, From: from, Cart: c, By: by}
}

// connectedOn brings h to a connection on c's cart whose hello was
// answered with c, as connected does for an empty cart.
func connectedOn(h *harness, c *cart.Cart) {
	h.do(opened(h))
	h.do(got(h, welcome("tok", c.ID)))
	h.do(got(h, reply("h1", c, nil)))
}

func TestMachineScripted(t *testing.T) {
	me := func(seq uint64) protocol.OpID { return protocol.OpID{Client: "me", Seq: seq} }
	runMachineCases(t, []machineCase{{
		name:  "an in-order push is taken, an old one ignored, a gap synced; a cart of another id is not ours",
		setup: func(h *harness) { connectedOn(h, cartAt(3, "tea=1")) },
		steps: []machineStep{
			{in: serverSays(pushedCart(3, cartAt(4, "tea=2"), protocol.OpID{Client: "phone", Seq: 5})),
				want: []string{"confirm cart-1@4 done=phone/5"},
				then: func(t testing.TB, h *harness) {
					if st := h.m.snapshot(); st.Confirmed != 4 || summary(st.Cart) != "tea=2" {
						t.Errorf("state %+v, want the push taken at version 4", st)
					}
				}},
			{in: serverSays(pushedCart(3, cartAt(4, "tea=2"), protocol.OpID{Client: "phone", Seq: 5})),
				want: nil}, // already taken: no sync
			{in: serverSays(pushedCart(8, cartAt(9, "tea=7"), protocol.OpID{Client: "phone", Seq: 10})),
				want: []string{"send sync s2 since=4 clients=[]"}},
			{in: serverSays(reply("s2", cartAt(9, "tea=7"), map[string]uint64{})),
				want: []string{"confirm cart-1@9", "load"},
				then: func(t testing.TB, h *harness) {
					if st := h.m.snapshot(); st.Confirmed != 9 || summary(st.Cart) != "tea=7" || st.Status != Synced {
						t.Errorf("state %+v, want the synced cart at 9", st)
					}
				}},
			{in: func(h *harness) func(*machine) {
				other := cartAt(20)
				other.ID = "cart-2"
				return got(h, pushedCart(9, other, protocol.OpID{Client: "x", Seq: 1}))
			}, want: nil},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Confirmed != 9 {
				t.Errorf("took a cart of another id: confirmed %d", st.Confirmed)
			}
		},
	}, {
		name: "a push between welcome and the hello's reply is held; one the reply covers needs no sync",
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: serverSays(welcome("tok", "cart-1")), want: []string{`swap "" -> "tok"`}},
			{in: serverSays(pushedCart(5, cartAt(6, "tea=1"), protocol.OpID{Client: "phone", Seq: 1})),
				want: nil},
			{in: serverSays(reply("h1", cartAt(6, "tea=1"), map[string]uint64{"me": 0})),
				want: []string{"confirm cart-1@6", "load"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Confirmed != 6 || st.Status != Synced {
				t.Errorf("state %+v, want synced at 6", st)
			}
		},
	}, {
		name: "an ack for part of a batch waits for the error about the rest; out_of_order resends the rest",
		setup: func(h *harness) {
			for range 3 {
				h.edit(add("mug"))
			}
			h.do(opened(h))
			h.do(got(h, welcome("tok", "cart-1")))
		},
		steps: []machineStep{
			{in: serverSays(reply("h1", cartAt(0), nil)),
				want: []string{"confirm cart-1@0", "load", "send push p2 me/1,me/2,me/3"}},
			{in: serverSays(ack("p2", cartAt(1, "mug=1"), applied(me(1), 1))),
				want: []string{"confirm cart-1@1 done=me/1"}}, // no push: p2 is still in flight
			{in: serverSays(errMsg("p2", protocol.ErrOutOfOrder, func(pe *protocol.Error) { pe.Expected = &protocol.OpID{Client: "me", Seq: 2} })),
				want: []string{"send push p3 me/2,me/3"}},
			{in: serverSays(ack("p3", cartAt(3, "mug=3"), applied(me(2), 2), applied(me(3), 3))),
				want: []string{"confirm cart-1@3 done=me/2,me/3"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Pending != 0 || st.Confirmed != 3 || summary(st.Cart) != "mug=3" || st.LastError != nil {
				t.Errorf("state %+v, want everything confirmed at 3 and no error", st)
			}
		},
	}, {
		name: "an error without a request id is about the push in flight: too_large halves the batch",
		setup: func(h *harness) {
			for range 4 {
				h.edit(add("mug"))
			}
			connected(h, 0) // pushes p2 me/1..me/4
		},
		steps: []machineStep{
			{in: serverSays(errMsg("", protocol.ErrTooLarge, nil)),
				want: []string{"send push p3 me/1,me/2"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.LastError == nil || st.LastError.Code != protocol.ErrTooLarge {
				t.Errorf("LastError = %v, want too_large", st.LastError)
			}
		},
	}, {
		name:  "a failed sync is retried when the retry timer fires",
		setup: func(h *harness) { connected(h, 1) },
		steps: []machineStep{
			{in: serverSays(pushedCart(4, cartAt(5), protocol.OpID{Client: "x", Seq: 4})),
				want: []string{"send sync s2 since=1 clients=[]"}},
			{in: serverSays(errMsg("s2", protocol.ErrInternal, nil)),
				want: nil, // nothing until the timer
				then: func(t testing.TB, h *harness) {
					// The first retry: full jitter on BackoffBase, rand 0.5.
					if d := h.armed[timerRetry]; d != 250*time.Millisecond {
						t.Errorf("retry timer %v, want 250ms", d)
					}
				}},
			{in: timerFires(timerRetry), want: []string{"send sync s3 since=1 clients=[]"}},
		},
	}, {
		name: "a refused hello without a token ends the connection and is shown; the next hello starts over",
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: serverSays(errMsg("h1", protocol.ErrUnauthorized, nil)),
				want: []string{endedBy(protocol.ErrUnauthorized, string(protocol.ErrUnauthorized))},
				then: func(t testing.TB, h *harness) {
					if st := h.m.snapshot(); st.LastError == nil || st.LastError.Code != protocol.ErrUnauthorized || st.NeedsLogin {
						t.Errorf("state %+v, want the unauthorized error shown, and no login needed", st)
					}
				}},
			{in: reopened, want: []string{`send hello h1 token="" since=0`}},
			{in: serverSays(welcome("tok", "cart-1")), want: []string{`swap "" -> "tok"`}},
			{in: serverSays(reply("h1", cartAt(0), nil)), want: []string{"confirm cart-1@0", "load"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Status != Synced || h.m.token != "tok" {
				t.Errorf("state %+v, token %q; want synced with token tok", st, h.m.token)
			}
		},
	}, {
		name: "unsupported_version ends the connection with the error (the driver stops Run)",
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: serverSays(errMsg("h1", protocol.ErrUnsupportedVersion, nil)),
				want: []string{endedBy(protocol.ErrUnsupportedVersion, string(protocol.ErrUnsupportedVersion))}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.LastError == nil || st.LastError.Code != protocol.ErrUnsupportedVersion {
				t.Errorf("state %+v, want the unsupported_version error shown", st)
			}
		},
	}, {
		name: "an ack of the shown cart's own edits is stored and shown without reading the storage back",
		setup: func(h *harness) {
			h.edit(add("mug"))
			h.edit(cart.Op{Kind: cart.KindAdd, SKU: "tea", Quantity: 2})
			connected(h, 0) // pushes p2 me/1,me/2
		},
		steps: []machineStep{
			{in: serverSays(ack("p2", cartAt(2, "mug=1", "tea=2"), applied(me(1), 1), applied(me(2), 2))),
				want: []string{"confirm cart-1@2 done=me/1,me/2"}}, // no load
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Pending != 0 || st.Cart.Version != 2 || summary(st.Cart) != "mug=1 tea=2" {
				t.Errorf("shown %+v, want version 2 with nothing pending", st)
			}
			stored, err := h.store.Load(context.Background())
			must(t, err)
			if len(stored.Pending) != 0 || stored.Cart.Version != 2 {
				t.Errorf("stored %d pending, version %d; want 0 and 2", len(stored.Pending), stored.Cart.Version)
			}
		},
	}, {
		// A client id rotated because ops were lost belongs to the cart
		// shown, and is rotated again when that cart is replaced: the
		// fresh cart gets ops of a new id from seq 1, never the old id's
		// next seq, which the server would refuse as out of order.
		name: "a client id rotated for lost ops moves to no other cart",
		setup: func(h *harness) {
			h.edit(add("mug"))
			h.edit(add("mug"))
			connected(h, 0) // pushes p2 me/1,me/2
		},
		steps: []machineStep{
			{in: serverSays(ack("p2", cartAt(1, "mug=1"), applied(me(1), 1))),
				want: []string{"confirm cart-1@1 done=me/1"}},
			// me/2 can never be taken as such: the server expects me/1
			// (its database was restored). It goes again as id2/1.
			{in: serverSays(errMsg("p2", protocol.ErrOutOfOrder, func(pe *protocol.Error) { pe.Expected = &protocol.OpID{Client: "me", Seq: 1} })),
				want: []string{"reissue me above 1 as id2", "load", "send push p3 id2/1"},
				then: func(t testing.TB, h *harness) {
					st := h.m.snapshot()
					if h.m.client != "id1" || len(st.Rejected) != 0 {
						t.Errorf("client %q, rejected %+v; want a new client id and nothing rejected", h.m.client, st.Rejected)
					}
				}},
			{in: serverSays(ack("p3", cartAt(2, "mug=2"), applied(protocol.OpID{Client: "id2", Seq: 1}, 2))),
				want: []string{"confirm cart-1@2 done=id2/1"}},
			{in: editedOp(add("tea")), want: []string{"send push p4 id1/1"}},
			{in: serverSays(ack("p4", cartAt(3, "mug=2", "tea=1"), applied(protocol.OpID{Client: "id1", Seq: 1}, 3))),
				want: []string{"confirm cart-1@3 done=id1/1"}},
			{in: serverSays(errMsg("", protocol.ErrCartExpired, func(pe *protocol.Error) { pe.Cart = "cart-1" })),
				want: []string{"confirm @0", "load", endedBy(protocol.ErrCartExpired, string(protocol.ErrCartExpired))}},
			{in: func(h *harness) func(*machine) {
				h.edit(add("cap"))
				return reopened(h)
			}, want: []string{`send hello h1 token="tok" since=0`}},
			{in: serverSays(welcome("tok2", "cart-2")), want: []string{`swap "tok" -> "tok2"`}},
			{in: serverSays(reply("h1", &cart.Cart{ID: "cart-2", Lines: []*cart.Line{}}, map[string]uint64{})),
				want: []string{"confirm cart-2@0", "load", "send push p2 id3/1"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Pending != 1 || summary(st.Cart) != "cap=1" || len(st.Dropped) != 0 {
				t.Errorf("state %+v, want the cap pending on the fresh cart, nothing dropped", st)
			}
		},
	}, {
		// Pushed carts that cannot be taken yet are held, at most maxHeld;
		// past that the oldest is forgotten, not the newest: the gap it
		// leaves is closed with a sync, which brings the cart as it is
		// now. (Forgetting the newest would leave the cart behind with
		// nothing to tell.)
		name:  "past 16 held pushed carts the oldest is forgotten; the sync that closes its gap brings the newest cart",
		setup: func(h *harness) { connected(h, 1); h.edit(add("mug")) },
		steps: []machineStep{
			{in: woken, want: []string{"send push p2 me/1"}},
			// One more than can be held: from version 2 to 3, ..., from
			// 2+maxHeld to 3+maxHeld, while the push is in flight.
			{in: func(h *harness) func(*machine) {
				return func(m *machine) {
					for v := uint64(2); v <= 2+maxHeld; v++ {
						m.received(h.now, pushedCart(v, cartAt(v+1, "mug=1", fmt.Sprintf("tea=%d", v-1)), protocol.OpID{Client: "phone", Seq: v - 1}))
					}
				}
			}, then: func(t testing.TB, h *harness) {
				var froms []uint64
				for _, msg := range h.m.sess.held {
					froms = append(froms, msg.From)
				}
				var want []uint64
				for v := uint64(3); v <= 2+maxHeld; v++ {
					want = append(want, v)
				}
				if !slices.Equal(froms, want) {
					t.Errorf("held the carts from versions %v, want %v: the %d newest", froms, want, maxHeld)
				}
			}},
			{in: serverSays(ack("p2", cartAt(2, "mug=1"), applied(me(1), 2))),
				want: []string{"confirm cart-1@2 done=me/1", "send sync s3 since=2 clients=[]"}},
			{in: serverSays(reply("s3", cartAt(3+maxHeld, "mug=1", fmt.Sprintf("tea=%d", 1+maxHeld)), nil)),
				want: []string{fmt.Sprintf("confirm cart-1@%d", 3+maxHeld), "load"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Confirmed != 3+maxHeld || st.Status != Synced || len(h.m.sess.held) != 0 {
				t.Errorf("state %+v with %d held, want synced at version %d, nothing held", st, len(h.m.sess.held), 3+maxHeld)
			}
		},
	}})
}

// A login on another device that merges into the cart shown here changes
// it under the shopper: State.Elsewhere says what it did, until
// AckNotices. This device's own login merge, told first by its merge
// message, is not one.
func TestMachineLoginElsewhere(t *testing.T) {
	merge := func(v uint64) protocol.OpID { return protocol.OpID{Client: protocol.MergeClient, Seq: v} }
	elsewhere := func(want *LoginElsewhere) func(t testing.TB, h *harness) {
		return func(t testing.TB, h *harness) {
			t.Helper()
			got := h.m.snapshot().Elsewhere
			if (got == nil) != (want == nil) || (got != nil && *got != *want) {
				t.Errorf("Elsewhere = %+v, want %+v", got, want)
			}
		}
	}
	runMachineCases(t, []machineCase{{
		name:  "a replace on another device",
		setup: func(h *harness) { connectedOn(h, cartAt(3, "tea=1", "mug=2")) },
		steps: []machineStep{
			{in: serverSays(pushedCart(3, cartAt(4, "jam=1"), merge(4))),
				want: []string{"confirm cart-1@4 done=server:merge/4"},
				then: elsewhere(&LoginElsewhere{Version: 4, Removed: 2, Added: 1})},
			{in: func(h *harness) func(*machine) { return (*machine).ackNotices },
				then: elsewhere(nil)},
		},
	}, {
		name:  "a logout drops the news: it was about the account's cart",
		setup: func(h *harness) { connectedOn(h, cartAt(3, "tea=1")) },
		steps: []machineStep{
			{in: serverSays(pushedCart(3, cartAt(4, "jam=1"), merge(4))),
				want: []string{"confirm cart-1@4 done=server:merge/4"},
				then: elsewhere(&LoginElsewhere{Version: 4, Removed: 1, Added: 1})},
			{in: func(h *harness) func(*machine) { return func(m *machine) { m.setUser("", "") } },
				want: nil, then: elsewhere(nil)},
		},
	}, {
		name:  "a merge on another device that adds",
		setup: func(h *harness) { connectedOn(h, cartAt(3, "tea=1", "mug=2")) },
		steps: []machineStep{
			{in: serverSays(pushedCart(3, cartAt(4, "tea=2", "mug=2", "jam=1"), merge(4))),
				want: []string{"confirm cart-1@4 done=server:merge/4"},
				then: elsewhere(&LoginElsewhere{Version: 4, Added: 2})},
		},
	}, {
		name:  "an edit from another device is no login",
		setup: func(h *harness) { connectedOn(h, cartAt(3, "tea=1")) },
		steps: []machineStep{
			{in: serverSays(pushedCart(3, cartAt(4), protocol.OpID{Client: "phone", Seq: 7})),
				want: []string{"confirm cart-1@4 done=phone/7"},
				then: elsewhere(nil)},
		},
	}, {
		name:  "a replace that only lowers a quantity",
		setup: func(h *harness) { connectedOn(h, cartAt(3, "mug=3")) },
		steps: []machineStep{
			{in: serverSays(pushedCart(3, cartAt(4, "mug=1"), merge(4))),
				want: []string{"confirm cart-1@4 done=server:merge/4"},
				then: elsewhere(&LoginElsewhere{Version: 4, Removed: 1})},
		},
	}, {
		name: "a choice this engine was asked, answered in another tab",
		setup: func(h *harness) {
			connectedOn(h, cartAt(3, "tea=1"))
			h.do(got(h, &protocol.Message{Type: protocol.TypeMerge, Merge: &protocol.MergeInfo{Status: protocol.MergeChoose, Guest: cartAt(0), User: cartAt(3, "tea=1"), Version: 3}}))
		},
		steps: []machineStep{
			{in: serverSays(pushedCart(3, cartAt(4, "jam=1"), merge(4))),
				want: []string{"confirm cart-1@4 done=server:merge/4"},
				then: elsewhere(nil)},
		},
	}, {
		name:  "this device's own merge, told by its merge message",
		setup: func(h *harness) { connectedOn(h, cartAt(3, "tea=1")) },
		steps: []machineStep{
			{in: serverSays(&protocol.Message{Type: protocol.TypeMerge, Merge: &protocol.MergeInfo{Status: protocol.MergeMerged, Version: 4}})},
			{in: serverSays(pushedCart(3, cartAt(4, "tea=1", "jam=1"), merge(4))),
				want: []string{"confirm cart-1@4 done=server:merge/4"},
				then: elsewhere(nil)},
		},
	}})
}
