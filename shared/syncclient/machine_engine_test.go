package syncclient

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The engine's everyday exchange with the server, driven through the
// machine: hello and welcome, pushes and their acks, the carts other
// devices push, refusals, device tokens and client ids. What needs a
// driver (two running tabs, a dropped socket, a push split by size,
// OnChange) is in syncserver/engine_e2e_test.go, against the real server.

// engOp is the id of the harness's own op seq.
func engOp(seq uint64) protocol.OpID { return protocol.OpID{Client: "me", Seq: seq} }

// engAck answers push id with each of the own ops seqs applied, at
// versions counting up to c's.
func engAck(id string, c *cart.Cart, seqs ...uint64) *protocol.Message {
	rs := make([]protocol.Result, len(seqs))
	for i, seq := range seqs {
		rs[i] = applied(engOp(seq), c.Version-uint64(len(seqs)-1-i))
	}
	return ack(id, c, rs...)
}

// engEnqueue stores an op of another client id (a tab sharing the storage).
func engEnqueue(h *harness, client, sku string) {
	_, err := h.store.Enqueue(context.Background(), client, func(seq uint64) cart.Op {
		return cart.Op{Client: client, Seq: seq, Cart: "cart-1", Kind: cart.KindAdd, SKU: sku, Quantity: 1}
	})
	must(h.t, err)
}

func TestMachineEngine(t *testing.T) {
	wantState := func(cartSummary string, confirmed uint64, status Status) func(t testing.TB, h *harness) {
		return func(t testing.TB, h *harness) {
			t.Helper()
			st := h.m.snapshot()
			if summary(st.Cart) != cartSummary || st.Confirmed != confirmed || st.Pending != 0 || st.Status != status {
				t.Errorf("state: cart %q, confirmed %d, %d pending, %v; want %q, %d, none pending, %v",
					summary(st.Cart), st.Confirmed, st.Pending, st.Status, cartSummary, confirmed, status)
			}
		}
	}
	// tooLarge: push id is refused as too large; then want.
	tooLarge := func(id string, want ...string) machineStep {
		return machineStep{in: func(h *harness) func(*machine) { return got(h, errMsg(id, protocol.ErrTooLarge, nil)) }, want: want}
	}
	// ackedThen: push id of the own ops seqs is applied up to version v;
	// the confirm, then next.
	ackedThen := func(id string, v uint64, seqs []uint64, next ...string) machineStep {
		return machineStep{in: func(h *harness) func(*machine) { return got(h, engAck(id, cartAt(v), seqs...)) },
			want: append([]string{fmt.Sprintf("confirm cart-1@%d done=%s", v, opIDs(engOps(seqs)))}, next...)}
	}
	tests := []machineCase{{
		name: "the hello's cart is shown and stored with the token; the next hello says who it is and what it has",
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("tok", "cart-1")) },
				want: []string{`swap "" -> "tok"`}},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("h1", cartAt(1, "tea=2"), map[string]uint64{"me": 0}))
			}, want: []string{"confirm cart-1@1", "load"},
				then: func(t testing.TB, h *harness) {
					wantState("tea=2", 1, Synced)(t, h)
					stored, err := h.store.Load(context.Background())
					must(t, err)
					if stored.DeviceToken != "tok" || stored.Cart == nil || stored.Cart.Version != 1 || summary(stored.Cart) != "tea=2" {
						t.Errorf("stored token %q, cart %+v; want tok and the cart at version 1", stored.DeviceToken, stored.Cart)
					}
				}},
			{in: helloSays(func(t testing.TB, hello *protocol.Message) {
				if hello.Client != "me" || hello.Protocol != protocol.Version {
					t.Errorf("hello %+v, want client me at protocol %d", hello, protocol.Version)
				}
			}), want: []string{`send hello h1 token="tok" since=1`}},
		},
	}, {
		name:  "queued edits go in one push; its ack confirms them and empties the outbox",
		setup: func(h *harness) { connected(h, 1) },
		steps: []machineStep{
			{in: func(h *harness) func(*machine) {
				h.edit(cart.Op{Kind: cart.KindAdd, SKU: "mug", Quantity: 2})
				h.edit(add("mug"))
				h.edit(cart.Op{Kind: cart.KindAdd, SKU: "tea", Quantity: 1, Details: &cart.Details{Name: "Tea", Price: 450, Currency: "EUR"}})
				return woken(h)
			}, want: []string{"send push p2 me/1,me/2,me/3"}},
			{in: func(h *harness) func(*machine) { return got(h, engAck("p2", cartAt(4, "mug=3", "tea=1"), 1, 2, 3)) },
				want: []string{"confirm cart-1@4 done=me/1,me/2,me/3"},
				then: wantState("mug=3 tea=1", 4, Synced)},
			{in: func(h *harness) func(*machine) {
				h.edit(cart.Op{Kind: cart.KindSet, SKU: "mug", Quantity: 5})
				h.edit(cart.Op{Kind: cart.KindClear})
				return woken(h)
			}, want: []string{"send push p3 me/4,me/5"}},
			{in: func(h *harness) func(*machine) { return got(h, engAck("p3", cartAt(6), 4, 5)) },
				want: []string{"confirm cart-1@6 done=me/4,me/5"},
				then: wantState("", 6, Synced)},
		},
	}, {
		name: "a rejected op is removed and reported; the ops behind it are applied",
		setup: func(h *harness) {
			connected(h, 1)
			h.edit(add("mug"))
			h.edit(cart.Op{Kind: cart.KindSet, SKU: "ghost", Quantity: 2}) // valid, but the cart has no such line
			h.edit(add("tea"))
		},
		steps: []machineStep{
			{in: woken, want: []string{"send push p2 me/1,me/2,me/3"}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p2", cartAt(3, "mug=1", "tea=1"),
					applied(engOp(1), 2),
					protocol.Result{Client: "me", Seq: 2, Status: protocol.StatusRejected, Version: 2,
						Error: &cart.Error{Code: cart.CodeLineNotFound, Message: "no such line"}},
					applied(engOp(3), 3)))
			}, want: []string{"confirm cart-1@3 done=me/1,me/2,me/3"},
				then: wantState("mug=1 tea=1", 3, Synced)},
		},
		check: func(t testing.TB, h *harness) {
			rej := h.m.snapshot().Rejected
			if len(rej) != 1 || rej[0].Seq != 2 || rej[0].Error == nil || rej[0].Error.Code != cart.CodeLineNotFound {
				t.Errorf("Rejected = %+v, want op 2 with line_not_found", rej)
			}
		},
	}, {
		name: "an op applied reduced to the stock is reported; one applied with another warning is not",
		setup: func(h *harness) {
			connected(h, 1)
			h.edit(cart.Op{Kind: cart.KindAdd, SKU: "cap", Quantity: 5})
			h.edit(add("tea"))
		},
		steps: []machineStep{
			{in: woken, want: []string{"send push p2 me/1,me/2"}},
			{in: func(h *harness) func(*machine) {
				cut := applied(engOp(1), 2)
				cut.Warnings = []cart.Warning{{Code: cart.CodeStockClamped, Message: "only 3 of cap can be bought"}}
				other := applied(engOp(2), 3)
				other.Warnings = []cart.Warning{{Code: "price_changed", Message: "new price"}}
				return got(h, ack("p2", cartAt(3, "cap=3", "tea=1"), cut, other))
			}, want: []string{"confirm cart-1@3 done=me/1,me/2"},
				then: wantState("cap=3 tea=1", 3, Synced)},
		},
		check: func(t testing.TB, h *harness) {
			st := h.m.snapshot()
			if red := st.Reduced; len(red) != 1 || red[0].Seq != 1 || red[0].Warnings[0].Code != cart.CodeStockClamped {
				t.Errorf("Reduced = %+v, want op 1 with stock_clamped", red)
			}
			if len(st.Rejected) != 0 {
				t.Errorf("Rejected = %+v, want none", st.Rejected)
			}
		},
	}, {
		name:  "carts another device pushes are taken in order; after a lost one a sync catches up",
		setup: func(h *harness) { connected(h, 1) },
		steps: []machineStep{
			{in: func(h *harness) func(*machine) {
				return got(h, pushedCart(1, cartAt(2, "mug=1"), protocol.OpID{Client: "phone", Seq: 1}))
			}, want: []string{"confirm cart-1@2 done=phone/1"},
				then: wantState("mug=1", 2, Synced)},
			{in: func(h *harness) func(*machine) {
				return got(h, pushedCart(2, cartAt(3, "mug=1", "tea=2"), protocol.OpID{Client: "phone", Seq: 2}))
			}, want: []string{"confirm cart-1@3 done=phone/2"},
				then: wantState("mug=1 tea=2", 3, Synced)},
			// Version 4 was lost on the way.
			{in: func(h *harness) func(*machine) {
				return got(h, pushedCart(4, cartAt(5, "tea=2"), protocol.OpID{Client: "phone", Seq: 4}))
			}, want: []string{"send sync s2 since=3 clients=[]"}},
			{in: func(h *harness) func(*machine) { return got(h, reply("s2", cartAt(5, "tea=2"), nil)) },
				want: []string{"confirm cart-1@5", "load"},
				then: wantState("tea=2", 5, Synced)},
		},
	}, {
		name:  "out_of_order at a push's first op resends the push at once",
		setup: func(h *harness) { connected(h, 1); h.edit(add("mug")); h.edit(add("tea")) },
		steps: []machineStep{
			{in: woken, want: []string{"send push p2 me/1,me/2"}},
			{in: func(h *harness) func(*machine) {
				return got(h, errMsg("p2", protocol.ErrOutOfOrder, func(pe *protocol.Error) {
					pe.Retryable, pe.Expected = true, &protocol.OpID{Client: "me", Seq: 1}
				}))
			}, want: []string{"send push p3 me/1,me/2"}},
			{in: func(h *harness) func(*machine) { return got(h, engAck("p3", cartAt(3, "mug=1", "tea=1"), 1, 2)) },
				want: []string{"confirm cart-1@3 done=me/1,me/2"},
				then: wantState("mug=1 tea=1", 3, Synced)},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.LastError != nil || len(st.Rejected) != 0 {
				t.Errorf("LastError %v, Rejected %v after the resent push was applied; want none", st.LastError, st.Rejected)
			}
		},
	}, {
		// (The server takes the first seq of a client as it comes, so the
		// gap is after an op it has.)
		name: "an op lost from another tab's outbox: the ones behind the gap go again under a new client id, in their place, and ours go on",
		setup: func(h *harness) {
			for _, sku := range []string{"mug", "tea", "jam"} {
				engEnqueue(h, "tab-a", sku)
			}
			// tab-a/1 was acked; tab-a/2 is lost.
			must(h.t, h.store.Confirm(context.Background(), cartAt(1, "mug=1"),
				[]protocol.OpID{{Client: "tab-a", Seq: 1}, {Client: "tab-a", Seq: 2}}))
			must(h.t, func() error { _, err := h.store.SwapDeviceToken(context.Background(), "", "tok"); return err }())
			h.read()
			h.edit(add("cake"))
		},
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="tok" since=1`}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("", "cart-1")) }},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("h1", cartAt(1, "mug=1"), map[string]uint64{"me": 0}))
			}, want: []string{"confirm cart-1@1", "load", "send sync s2 since=1 clients=[tab-a me]"}},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("s2", cartAt(1, "mug=1"), map[string]uint64{"me": 0, "tab-a": 1}))
			}, want: []string{"confirm cart-1@1", "load", "send push p3 tab-a/3,me/1"}},
			{in: func(h *harness) func(*machine) {
				return got(h, errMsg("p3", protocol.ErrOutOfOrder, func(pe *protocol.Error) {
					pe.Retryable, pe.Expected = true, &protocol.OpID{Client: "tab-a", Seq: 2}
				}))
			}, want: []string{"reissue tab-a above 2 as id1", "load", "send push p4 id1/1,me/1"}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p4", cartAt(3, "cake=1", "jam=1", "mug=1"), applied(protocol.OpID{Client: "id1", Seq: 1}, 2), applied(engOp(1), 3)))
			},
				want: []string{"confirm cart-1@3 done=id1/1,me/1"},
				then: wantState("cake=1 jam=1 mug=1", 3, Synced)},
		},
		check: func(t testing.TB, h *harness) {
			if rej := h.m.snapshot().Rejected; len(rej) != 0 {
				t.Errorf("Rejected = %+v, want none", rej)
			}
			if h.m.client != "me" {
				t.Errorf("client id %q: another client's lost op moved ours", h.m.client)
			}
		},
	}, {
		name:  "a batch the server finds too large is halved until it is taken; the batch grows again after",
		setup: func(h *harness) { connected(h, 1) },
		steps: []machineStep{ // as a server taking at most 3 ops per push answers
			{in: func(h *harness) func(*machine) {
				for i := range 10 {
					h.edit(add(fmt.Sprint("sku-", i)))
				}
				return woken(h)
			}, want: []string{"send push p2 me/1,me/2,me/3,me/4,me/5,me/6,me/7,me/8,me/9,me/10"}},
			tooLarge("p2", "send push p3 me/1,me/2,me/3,me/4,me/5"),
			tooLarge("p3", "send push p4 me/1,me/2"),
			ackedThen("p4", 3, []uint64{1, 2}, "send push p5 me/3,me/4,me/5,me/6"),
			tooLarge("p5", "send push p6 me/3,me/4"),
			ackedThen("p6", 5, []uint64{3, 4}, "send push p7 me/5,me/6,me/7,me/8"),
			tooLarge("p7", "send push p8 me/5,me/6"),
			ackedThen("p8", 7, []uint64{5, 6}, "send push p9 me/7,me/8,me/9,me/10"),
			tooLarge("p9", "send push p10 me/7,me/8"),
			ackedThen("p10", 9, []uint64{7, 8}, "send push p11 me/9,me/10"),
			ackedThen("p11", 11, []uint64{9, 10}),
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.LastError != nil || len(st.Rejected) != 0 || st.Pending != 0 || st.Status != Synced {
				t.Errorf("state %+v after recovering; want synced, no error, nothing rejected or pending", st)
			}
		},
	}, {
		name:  "overloaded is shown, retried after what the server asked, and cleared by the next ack",
		setup: func(h *harness) { connected(h, 1); h.edit(add("mug")) },
		steps: []machineStep{
			{in: woken, want: []string{"send push p2 me/1"}},
			{in: func(h *harness) func(*machine) {
				return got(h, errMsg("p2", protocol.ErrOverloaded, func(pe *protocol.Error) {
					pe.Retryable, pe.RetryAfterMS = true, 2000
				}))
			}, then: func(t testing.TB, h *harness) {
				if d := h.armed[timerRetry]; d != 2*time.Second {
					t.Errorf("retry timer %v, want the 2s the server asked for", d)
				}
				if st := h.m.snapshot(); st.LastError == nil || st.LastError.Code != protocol.ErrOverloaded || st.Pending != 1 || st.Status != Syncing {
					t.Errorf("LastError %v with %d pending, %v; want overloaded with the op kept, syncing", st.LastError, st.Pending, st.Status)
				}
			}},
			{in: woken}, // nothing before the timer
			{in: func(h *harness) func(*machine) { return fire(h, timerRetry) },
				want: []string{"send push p3 me/1"}},
			{in: func(h *harness) func(*machine) { return got(h, engAck("p3", cartAt(2, "mug=1"), 1)) },
				want: []string{"confirm cart-1@2 done=me/1"},
				then: wantState("mug=1", 2, Synced)},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.LastError != nil {
				t.Errorf("LastError %v after a successful push, want nil", st.LastError)
			}
		},
	}, {
		name:  "a push cut off by a disconnect: the next hello's acked seqs settle it, nothing is resent",
		setup: func(h *harness) { connected(h, 1); h.edit(add("mug")); h.edit(add("mug")); h.edit(add("mug")) },
		steps: []machineStep{
			{in: woken, want: []string{"send push p2 me/1,me/2,me/3"}},
			// The server applied it; the connection dropped before the ack.
			{in: reopened, want: []string{`send hello h1 token="tok" since=1`}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("", "cart-1")) }},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("h1", cartAt(4, "mug=3"), map[string]uint64{"me": 3}))
			}, want: []string{"confirm cart-1@4 done=me/1,me/2,me/3", "load"},
				then: wantState("mug=3", 4, Synced)},
		},
	}, {
		name:  "a push cut off by a disconnect, and a hello reply without acked seqs: resent, and settled as duplicates",
		setup: func(h *harness) { connected(h, 1); h.edit(add("mug")); h.edit(add("mug")); h.edit(add("mug")) },
		steps: []machineStep{
			{in: woken, want: []string{"send push p2 me/1,me/2,me/3"}},
			{in: reopened, want: []string{`send hello h1 token="tok" since=1`}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("", "cart-1")) }},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartAt(4, "mug=3"), nil)) },
				want: []string{"confirm cart-1@4", "load", "send push p2 me/1,me/2,me/3"}},
			{in: func(h *harness) func(*machine) {
				rs := make([]protocol.Result, 3)
				for i := range rs {
					rs[i] = protocol.Result{Client: "me", Seq: uint64(i + 1), Status: protocol.StatusDuplicate, Version: 4}
				}
				return got(h, ack("p2", cartAt(4, "mug=3"), rs...))
			}, want: []string{"confirm cart-1@4 done=me/1,me/2,me/3"},
				then: wantState("mug=3", 4, Synced)},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); len(st.Rejected) != 0 || st.LastError != nil {
				t.Errorf("Rejected %v, LastError %v; duplicates are neither", st.Rejected, st.LastError)
			}
		},
	}, {
		name: "ops a closed tab queued in the shared storage: asked about with a sync, then pushed before ours, in the order they were made",
		setup: func(h *harness) {
			engEnqueue(h, "tab-a", "mug")
			engEnqueue(h, "tab-a", "mug")
			h.read()
			h.edit(add("tea"))
		},
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("tok", "cart-1")) },
				want: []string{`swap "" -> "tok"`}},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("h1", cartAt(0), map[string]uint64{"me": 0}))
			}, want: []string{"confirm cart-1@0", "load", "send sync s2 since=0 clients=[tab-a me]"}},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("s2", cartAt(0), map[string]uint64{"me": 0, "tab-a": 0}))
			}, want: []string{"confirm cart-1@0", "load", "send push p3 tab-a/1,tab-a/2,me/1"}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p3", cartAt(3, "mug=2", "tea=1"),
					applied(protocol.OpID{Client: "tab-a", Seq: 1}, 1), applied(protocol.OpID{Client: "tab-a", Seq: 2}, 2), applied(engOp(1), 3)))
			}, want: []string{"confirm cart-1@3 done=tab-a/1,tab-a/2,me/1"},
				then: wantState("mug=2 tea=1", 3, Synced)},
		},
	}, {
		name: "another tab stored a token first: the next hello presents it",
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: func(h *harness) func(*machine) {
				_, err := h.store.SwapDeviceToken(context.Background(), "", "theirs")
				must(h.t, err)
				return got(h, welcome("mine", "cart-1"))
			}, want: []string{`swap "" -> "mine"`, "end: " + errTokenChanged.Error()}},
			{in: reopened, want: []string{`send hello h1 token="theirs" since=0`}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("", "cart-1")) }},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartAt(1, "mug=1"), nil)) },
				want: []string{"confirm cart-1@1", "load"},
				then: wantState("mug=1", 1, Synced)},
		},
		check: func(t testing.TB, h *harness) {
			stored, err := h.store.Load(context.Background())
			must(t, err)
			if stored.DeviceToken != "theirs" || h.m.token != "theirs" {
				t.Errorf("stored token %q, used %q; want both theirs", stored.DeviceToken, h.m.token)
			}
		},
	}, {
		name: "a refused device token: its cart's ops and those made before any sync go to the new cart; new edits under a new client id",
		setup: func(h *harness) {
			ctx := context.Background()
			_, err := h.store.Enqueue(ctx, "early", func(seq uint64) cart.Op { // made before any sync
				return cart.Op{Client: "early", Seq: seq, Kind: cart.KindAdd, SKU: "jam", Quantity: 1}
			})
			must(h.t, err)
			_, err = h.store.SwapDeviceToken(ctx, "", "forged")
			must(h.t, err)
			old := &cart.Cart{ID: "cart-old", Version: 5, Lines: []*cart.Line{{Key: "old", SKU: "old", Quantity: 1}}}
			must(h.t, h.store.Confirm(ctx, old, nil))
			h.read()
			h.edit(add("mug"))
		},
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="forged" since=5`}},
			{in: func(h *harness) func(*machine) { return got(h, errMsg("h1", protocol.ErrUnauthorized, nil)) },
				want: []string{`swap "forged" -> ""`, "confirm @0", "restamp cart-old -> ", "load",
					"end: " + protocol.Errorf(protocol.ErrUnauthorized, "unauthorized").Error(), "load"},
				then: func(t testing.TB, h *harness) {
					st := h.m.snapshot()
					if d := st.Dropped; len(d) != 0 {
						t.Errorf("Dropped = %+v, want none", d)
					}
					if summary(st.Cart) != "jam=1 mug=1" || st.Pending != 2 {
						t.Errorf("shown %q with %d pending, want the early jam and the mug", summary(st.Cart), st.Pending)
					}
				}},
			{in: reopened, want: []string{`send hello h1 token="" since=0`}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("dev-1", "cart-1")) },
				want: []string{`swap "" -> "dev-1"`}},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartAt(0), map[string]uint64{})) },
				want: []string{"confirm cart-1@0", "load", "send sync s2 since=0 clients=[early me]"}},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("s2", cartAt(0), map[string]uint64{"early": 0, "me": 0}))
			},
				want: []string{"confirm cart-1@0", "load", "send push p3 early/1,me/1"}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p3", cartAt(2, "jam=1", "mug=1"),
					applied(protocol.OpID{Client: "early", Seq: 1}, 1), applied(engOp(1), 2)))
			}, want: []string{"confirm cart-1@2 done=early/1,me/1"},
				then: wantState("jam=1 mug=1", 2, Synced)},
		},
		check: func(t testing.TB, h *harness) {
			stored, err := h.store.Load(context.Background())
			must(t, err)
			if stored.DeviceToken != "dev-1" || stored.Cart.ID != "cart-1" {
				t.Errorf("stored token %q and cart %q, want dev-1 and cart-1", stored.DeviceToken, stored.Cart.ID)
			}
			if h.m.client == "me" {
				t.Error("the client id did not change with the cart")
			}
		},
	}, {
		name: "the server can take no more of our own ops: they go again under a new client id, and new edits under another",
		setup: func(h *harness) {
			connected(h, 1)
			h.edit(add("mug"))
			h.do(woken(h))
			h.do(got(h, engAck("p2", cartAt(2, "mug=1"), 1)))
			h.edit(add("tea"))
			h.edit(add("jam"))
			must(h.t, h.store.Confirm(context.Background(), nil, []protocol.OpID{engOp(2)})) // lost
			h.read()
		},
		steps: []machineStep{
			{in: woken, want: []string{"send push p3 me/3"}},
			{in: func(h *harness) func(*machine) {
				return got(h, errMsg("p3", protocol.ErrOutOfOrder, func(pe *protocol.Error) {
					pe.Retryable, pe.Expected = true, &protocol.OpID{Client: "me", Seq: 2}
				}))
			}, want: []string{"reissue me above 2 as id2", "load", "send push p4 id2/1"},
				then: func(t testing.TB, h *harness) {
					if h.m.client != "id1" {
						t.Fatalf("client id %q, want id1", h.m.client)
					}
					if rej := h.m.snapshot().Rejected; len(rej) != 0 {
						t.Errorf("Rejected = %+v, want none", rej)
					}
				}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p4", cartAt(3, "jam=1", "mug=1"), applied(protocol.OpID{Client: "id2", Seq: 1}, 3)))
			}, want: []string{"confirm cart-1@3 done=id2/1"}},
			{in: func(h *harness) func(*machine) { h.edit(add("cake")); return woken(h) },
				want: []string{"send push p5 id1/1"}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p5", cartAt(4, "cake=1", "jam=1", "mug=1"), applied(protocol.OpID{Client: "id1", Seq: 1}, 4)))
			}, want: []string{"confirm cart-1@4 done=id1/1"},
				then: wantState("cake=1 jam=1 mug=1", 4, Synced)},
		},
	}, {
		name:  "an ack whose ops were applied beyond the cart it carries: a sync fetches the cart",
		setup: func(h *harness) { connected(h, 1); h.edit(add("mug")) },
		steps: []machineStep{
			{in: woken, want: []string{"send push p2 me/1"}},
			{in: serverSays(ack("p2", nil, applied(engOp(1), 2))),
				want: []string{"confirm done=me/1", "send sync s3 since=1 clients=[]"}},
			{in: serverSays(reply("s3", cartAt(2, "mug=1"), nil)),
				want: []string{"confirm cart-1@2", "load"},
				then: wantState("mug=1", 2, Synced)},
		},
	}, {
		name:  "a sync's reply older than the confirmed cart does not replace it",
		setup: func(h *harness) { connectedOn(h, cartAt(3, "tea=1")) },
		steps: []machineStep{
			{in: serverSays(pushedCart(5, cartAt(6, "tea=3"), protocol.OpID{Client: "phone", Seq: 3})),
				want: []string{"send sync s2 since=3 clients=[]"}},
			{in: serverSays(reply("s2", cartAt(2, "old=1"), nil)),
				want: []string{"load"},
				then: wantState("tea=1", 3, Synced)},
		},
	}, {
		name:  "a late error about a sync already retried is ignored",
		setup: func(h *harness) { connected(h, 1) },
		steps: []machineStep{
			{in: serverSays(pushedCart(2, cartAt(3), protocol.OpID{Client: "x", Seq: 1})),
				want: []string{"send sync s2 since=1 clients=[]"}},
			{in: serverSays(errMsg("s2", protocol.ErrInternal, nil))},
			{in: timerFires(timerRetry), want: []string{"send sync s3 since=1 clients=[]"}},
			{in: serverSays(errMsg("s2", protocol.ErrInternal, nil)),
				then: func(t testing.TB, h *harness) {
					if s := h.m.sess; s.syncID != "s3" || s.retry || s.failures != 1 {
						t.Errorf("sync in flight %q, retry %v, failures %d; want s3 still awaited, no retry, 1 failure", s.syncID, s.retry, s.failures)
					}
				}},
			{in: serverSays(reply("s3", cartAt(3), nil)),
				want: []string{"confirm cart-1@3", "load"},
				then: wantState("", 3, Synced)},
		},
	}, {
		name:  "a token another tab stored while connected ends the connection once the storage is read",
		setup: func(h *harness) { connected(h, 1) },
		steps: []machineStep{
			{in: func(h *harness) func(*machine) {
				_, err := h.store.SwapDeviceToken(context.Background(), "tok", "theirs")
				must(h.t, err)
				return fire(h, timerPing)
			}, want: []string{"load", "send ping", "end: " + errTokenChanged.Error()}},
		},
		check: func(t testing.TB, h *harness) {
			if h.m.token != "theirs" {
				t.Errorf("token %q, want theirs", h.m.token)
			}
		},
	}, {
		// The server refuses a sync about more client ids (protocol
		// MaxClientsPerSync): the first ones in outbox order are asked
		// about.
		name: "a sync asks about at most protocol.MaxClientsPerSync client ids, the first in outbox order",
		setup: func(h *harness) {
			for i := range protocol.MaxClientsPerSync + 1 {
				engEnqueue(h, fmt.Sprintf("tab-%02d", i), "mug")
			}
			h.read()
		},
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: serverSays(welcome("tok", "cart-1")), want: []string{`swap "" -> "tok"`}},
			{in: serverSays(reply("h1", cartAt(0), nil)), want: []string{"confirm cart-1@0", "load", func() string {
				ids := make([]string, protocol.MaxClientsPerSync)
				for i := range ids {
					ids[i] = fmt.Sprintf("tab-%02d", i)
				}
				return fmt.Sprintf("send sync s2 since=0 clients=%v", ids)
			}()}},
		},
	}, {
		// The server would refuse a push of it whatever the batch: kept,
		// it would block every op behind it.
		name:  "an op too large to send on its own is dropped and reported; the ops behind it are pushed",
		setup: func(h *harness) { connected(h, 1) },
		steps: []machineStep{
			{in: func(h *harness) func(*machine) {
				h.edit(add(strings.Repeat("x", protocol.MaxMessageBytes)))
				h.edit(add("tea"))
				return woken(h)
			}, want: []string{"confirm done=me/1", "send push p2 me/2"},
				then: func(t testing.TB, h *harness) {
					rej := h.m.snapshot().Rejected
					if len(rej) != 1 || rej[0].Client != "me" || rej[0].Seq != 1 || rej[0].Status != protocol.StatusRejected ||
						rej[0].Error == nil || rej[0].Error.Code != cart.CodeInvalidOp {
						t.Errorf("Rejected = %+v, want me/1 refused as invalid_op", rej)
					}
				}},
			{in: serverSays(engAck("p2", cartAt(2, "tea=1"), 2)),
				want: []string{"confirm cart-1@2 done=me/2"},
				then: wantState("tea=1", 2, Synced)},
		},
	}, {
		name:  "State.Rejected keeps the 20 most recent rejections, oldest first",
		setup: func(h *harness) { connected(h, 1) },
		steps: []machineStep{
			{in: func(h *harness) func(*machine) {
				for range maxRejected + 5 {
					h.edit(add("mug"))
				}
				return woken(h)
			}, want: []string{"send push p2 " + opIDs(engOps(seqsFrom(1, maxRejected+5)))}},
			{in: func(h *harness) func(*machine) {
				rs := make([]protocol.Result, maxRejected+5)
				for i := range rs {
					rs[i] = protocol.Result{Client: "me", Seq: uint64(i + 1), Status: protocol.StatusRejected, Version: 1,
						Error: &cart.Error{Code: cart.CodeInvalidQuantity, Message: "too many"}}
				}
				return got(h, ack("p2", cartAt(1), rs...))
			}, want: []string{"confirm cart-1@1 done=" + opIDs(engOps(seqsFrom(1, maxRejected+5)))}},
		},
		check: func(t testing.TB, h *harness) {
			var got []protocol.OpID
			for _, r := range h.m.snapshot().Rejected {
				got = append(got, protocol.OpID{Client: r.Client, Seq: r.Seq})
			}
			if want := engOps(seqsFrom(6, maxRejected+5)); !slices.Equal(got, want) {
				t.Errorf("Rejected %s, want the newest %d: %s", opIDs(got), maxRejected, opIDs(want))
			}
		},
	}}
	runMachineCases(t, tests)
}

// seqsFrom returns the seqs from to last.
func seqsFrom(from, last uint64) []uint64 {
	var out []uint64
	for seq := from; seq <= last; seq++ {
		out = append(out, seq)
	}
	return out
}

// engOps are the own ops seqs.
func engOps(seqs []uint64) []protocol.OpID {
	out := make([]protocol.OpID, len(seqs))
	for i, seq := range seqs {
		out[i] = engOp(seq)
	}
	return out
}
