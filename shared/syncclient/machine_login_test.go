package syncclient

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// Logins, logouts and the ends of guest carts, driven through the machine
// input by input (see TestMachine): what is sent, stored, shown, dropped
// and waited for.

// openedAs opens a connection whose driver read user token tok from
// Config.UserToken.
func openedAs(tok string) func(h *harness) func(*machine) {
	return func(h *harness) func(*machine) {
		return func(m *machine) { m.start(h.now, tok) }
	}
}

// helloSays ends the connection if one is open, opens the next one and
// checks the hello it sends.
func helloSays(check func(t testing.TB, hello *protocol.Message)) func(h *harness) func(*machine) {
	return func(h *harness) func(*machine) {
		return func(m *machine) {
			m.stop()
			m.start(h.now, "")
			for _, ef := range m.out {
				if s, ok := ef.(sendMsg); ok && s.m.Type == protocol.TypeHello {
					check(h.t, s.m)
					return
				}
			}
			h.t.Error("no hello sent")
		}
	}
}

// logIn is SetUser as the Engine does it: set the user, end a connection
// of another user.
func logIn(tok string, policy cart.Policy) func(h *harness) func(*machine) {
	return func(h *harness) func(*machine) {
		return func(m *machine) {
			if !m.setUser(tok, policy) {
				h.t.Errorf("setUser(%q, %q) reported no change", tok, policy)
			}
			m.userChanged()
		}
	}
}

// welcomeUser is the welcome of a user hello: the user's cart, and the
// device's guest cart merged into it.
func welcomeUser(token, user, guest string) *protocol.Message {
	w := welcome(token, "u-"+user)
	w.User, w.GuestCartID = user, guest
	return w
}

// cartNamed is cartAt for cart id.
func cartNamed(id string, v uint64, lines ...string) *cart.Cart {
	c := cartAt(v, lines...)
	c.ID = id
	return c
}

func mergeNote(mi protocol.MergeInfo) *protocol.Message {
	return &protocol.Message{Type: protocol.TypeMerge, Merge: &mi}
}

func errUserChangedEnd() string { return "end: " + errUserChanged.Error() }

// endedBy is the effect line of a connection ended by the server's error.
func endedBy(code protocol.ErrorCode, msg string) string {
	return "end: " + protocol.Errorf(code, "%s", msg).Error()
}

// signedIn brings h to a connection on ann's cart u-ann at version 0 with
// token "tok" and guest cart cart-1, then stores and acks a mug: version 1.
func signedIn(h *harness) {
	h.m.setUser("user:ann", "")
	h.do(opened(h))
	h.do(got(h, welcomeUser("tok", "ann", "cart-1")))
	h.do(got(h, reply("h1", cartNamed("u-ann", 0), nil)))
	h.edit(add("mug"))
	h.do(woken(h))
	h.do(got(h, ack("p2", cartNamed("u-ann", 1, "mug=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 1))))
}

// guestMug brings h to a guest connection on cart-1 with a mug acked at
// version 2.
func guestMug(h *harness) {
	connected(h, 1)
	h.edit(add("mug"))
	h.do(woken(h))
	h.do(got(h, ack("p2", cartAt(2, "mug=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 2))))
}

// outboxStored returns the outbox as stored.
func outboxStored(h *harness) []cart.Op {
	st, err := h.store.Load(context.Background())
	must(h.t, err)
	return st.Pending
}

// expiredGuest plays TestMachineLogin's expired guest cart: a mug synced
// on cart-1 at version 1; offline, a tea made on cart-1 and an op made by
// another engine before any sync ("early", on no cart). With reload the
// machine then starts over from the storage, as a reloaded page does, and
// has never seen cart-1's welcome.
func expiredGuest(h *harness, reload bool) {
	connected(h, 0)
	h.edit(add("mug"))
	h.do(woken(h))
	h.do(got(h, ack("p2", cartAt(1, "mug=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 1))))
	h.m.stop()
	h.edit(add("tea"))
	_, err := h.store.Enqueue(context.Background(), "early", func(seq uint64) cart.Op {
		return cart.Op{Client: "early", Seq: seq, Kind: cart.KindAdd, SKU: "jam", Quantity: 1}
	})
	must(h.t, err)
	if reload {
		fresh := newHarness(h.t)
		fresh.store = h.store
		fresh.read()
		*h = *fresh
	}
}

func expiredGuestSteps() []machineStep {
	return []machineStep{
		{in: opened, want: []string{`send hello h1 token="tok" since=1`}},
		// An older server names no cart: the machine works out it was
		// cart-1, forgets it, and its tea goes to the device's cart now.
		{in: func(h *harness) func(*machine) {
			return got(h, errMsg("h1", protocol.ErrCartExpired, nil))
		}, want: []string{"confirm @0", "restamp cart-1 -> ", "load", "load"}},
		{in: func(h *harness) func(*machine) { return got(h, welcome("tok2", "cart-2")) },
			want: []string{`swap "tok" -> "tok2"`}},
		{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartNamed("cart-2", 0), nil)) },
			want: []string{"confirm cart-2@0", "load", "send sync s2 since=0 clients=[me early]"}},
		{in: func(h *harness) func(*machine) {
			return got(h, reply("s2", cartNamed("cart-2", 0), map[string]uint64{"early": 0, "me": 0}))
		}, want: []string{"confirm cart-2@0", "load", "send push p3 me/2,early/1"}},
		{in: func(h *harness) func(*machine) {
			return got(h, ack("p3", cartNamed("cart-2", 2, "jam=1", "tea=1"),
				applied(protocol.OpID{Client: "me", Seq: 2}, 1), applied(protocol.OpID{Client: "early", Seq: 1}, 2)))
		}, want: []string{"confirm cart-2@2 done=me/2,early/1"}},
	}
}

func checkExpiredGuest(t testing.TB, h *harness) {
	st := h.m.snapshot()
	if !st.CartExpired || st.Status != Synced || st.Pending != 0 || st.Cart.ID != "cart-2" || summary(st.Cart) != "jam=1 tea=1" {
		t.Errorf("state %+v (%s %q), want the fresh cart-2 synced with the early jam and the tea", st, st.Cart.ID, summary(st.Cart))
	}
	if len(st.Dropped) != 0 {
		t.Errorf("Dropped = %+v, want none", st.Dropped)
	}
	stored, err := h.store.Load(context.Background())
	must(t, err)
	if stored.DeviceToken != "tok2" || stored.Cart.ID != "cart-2" {
		t.Errorf("stored %q and %s, want tok2 and cart-2", stored.DeviceToken, stored.Cart.ID)
	}
	h.m.ackNotices()
	if st := h.m.snapshot(); st.CartExpired || st.Dropped != nil {
		t.Errorf("after ackNotices: %+v", st)
	}
}

func TestMachineLogin(t *testing.T) {
	tests := []machineCase{{
		name:  "ops carry the cart shown when they were made: none before the first sync",
		setup: func(h *harness) { h.edit(add("mug")) },
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("tok", "cart-1")) },
				want: []string{`swap "" -> "tok"`}},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartAt(1), nil)) },
				want: []string{"confirm cart-1@1", "load", "send push p2 me/1"},
				then: func(t testing.TB, h *harness) {
					if p := h.m.pending; len(p) != 1 || p[0].SKU != "mug" || p[0].Cart != "" {
						t.Errorf("pushed %+v, want the mug on no cart", p)
					}
				}},
			{in: func(h *harness) func(*machine) {
				h.edit(add("tea"))
				return got(h, ack("p2", cartAt(2, "mug=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 2)))
			}, want: []string{"confirm cart-1@2 done=me/1", "send push p3 me/2"},
				then: func(t testing.TB, h *harness) {
					if p := h.m.pending; len(p) != 1 || p[0].SKU != "tea" || p[0].Cart != "cart-1" {
						t.Errorf("pushed %+v, want the tea on cart-1", p)
					}
				}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p3", cartAt(3, "mug=1", "tea=1"), applied(protocol.OpID{Client: "me", Seq: 2}, 3)))
			}, want: []string{"confirm cart-1@3 done=me/2"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Status != Synced || st.Pending != 0 || st.Confirmed != 3 || summary(st.Cart) != "mug=1 tea=1" {
				t.Errorf("state %+v (%q), want synced at 3 with mug=1 tea=1", st, summary(st.Cart))
			}
		},
	}, {
		name:  "a login merges the guest cart: the user's cart is shown under a new client id and gets the new edits",
		setup: guestMug,
		steps: []machineStep{
			{in: logIn("user:ann", ""), want: []string{errUserChangedEnd()}},
			{in: func(h *harness) func(*machine) { h.m.stop(); return opened(h) },
				want: []string{`send hello h1 token="tok" since=2 user=user:ann`}},
			{in: func(h *harness) func(*machine) { return got(h, welcomeUser("", "ann", "cart-1")) }},
			{in: serverSays(mergeNote(protocol.MergeInfo{Status: protocol.MergeMerged, Version: 2,
				Result: &cart.MergeResult{Policy: cart.PolicyMerge, Added: 1, Items: 1}}))},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("h1", cartNamed("u-ann", 2, "mug=1", "tea=1"), nil))
			},
				want: []string{"confirm u-ann@2", "load"},
				then: func(t testing.TB, h *harness) {
					st := h.m.snapshot()
					if st.User != "ann" || st.Cart.ID != "u-ann" || summary(st.Cart) != "mug=1 tea=1" || st.Status != Synced {
						t.Errorf("state %+v (%s %q), want ann's synced u-ann with mug=1 tea=1", st, st.Cart.ID, summary(st.Cart))
					}
					if st.Merge == nil || st.Merge.Status != protocol.MergeMerged || st.Merge.Result == nil || st.Merge.Result.Added != 1 {
						t.Errorf("Merge = %+v, want merged with one line added", st.Merge)
					}
					if h.m.client == "me" {
						t.Error("same client id on the user cart")
					}
				}},
			{in: func(h *harness) func(*machine) { h.edit(add("jam")); return woken(h) },
				want: []string{"send push p2 id1/1"},
				then: func(t testing.TB, h *harness) {
					if p := h.m.pending; len(p) != 1 || p[0].SKU != "jam" || p[0].Cart != "u-ann" {
						t.Errorf("pushed %+v, want the jam on u-ann", p)
					}
				}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p2", cartNamed("u-ann", 3, "jam=1", "mug=1", "tea=1"), applied(protocol.OpID{Client: "id1", Seq: 1}, 3)))
			}, want: []string{"confirm u-ann@3 done=id1/1"}},
			// The same login again changes nothing: no reconnect.
			{in: func(h *harness) func(*machine) {
				return func(m *machine) {
					if m.setUser("user:ann", "") {
						h.t.Error("setUser of the same user reported a change")
					}
					m.userChanged()
				}
			}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Pending != 0 || summary(st.Cart) != "jam=1 mug=1 tea=1" {
				t.Errorf("state %+v (%q), want jam=1 mug=1 tea=1 with nothing pending", st, summary(st.Cart))
			}
			h.m.ackNotices()
			if st := h.m.snapshot(); st.Merge != nil {
				t.Errorf("Merge %+v after ackNotices", st.Merge)
			}
		},
	}, {
		name: "guest edits made offline are sent on the user's connection, stamped with the guest cart",
		setup: func(h *harness) {
			guestMug(h)
			h.m.stop()
			h.edit(add("tea"))
			h.m.setUser("user:ann", cart.PolicyMerge)
		},
		steps: []machineStep{
			{in: helloSays(func(t testing.TB, hello *protocol.Message) {
				if hello.UserToken != "user:ann" || hello.Policy != cart.PolicyMerge || hello.DeviceToken != "tok" || hello.Protocol != protocol.Version {
					t.Errorf("hello %+v, want user:ann with the policy merge on device tok", hello)
				}
			}), want: []string{`send hello h1 token="tok" since=2 user=user:ann`}},
			{in: func(h *harness) func(*machine) { return got(h, welcomeUser("", "ann", "cart-1")) }},
			{in: serverSays(mergeNote(protocol.MergeInfo{Status: protocol.MergeMerged, Version: 1,
				Result: &cart.MergeResult{Policy: cart.PolicyMerge, Added: 1, Items: 1}}))},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartNamed("u-ann", 1, "mug=1"), nil)) },
				want: []string{"confirm u-ann@1", "load", "send push p2 me/2"},
				then: func(t testing.TB, h *harness) {
					if p := h.m.pending; len(p) != 1 || p[0].SKU != "tea" || p[0].Cart != "cart-1" {
						t.Errorf("pushed %+v, want the tea made on cart-1", p)
					}
					if st := h.m.snapshot(); summary(st.Cart) != "mug=1 tea=1" || st.Waiting != 0 {
						t.Errorf("state %+v (%q), want the tea shown on ann's cart", st, summary(st.Cart))
					}
				}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p2", cartNamed("u-ann", 2, "mug=1", "tea=1"), applied(protocol.OpID{Client: "me", Seq: 2}, 2)))
			}, want: []string{"confirm u-ann@2 done=me/2"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.User != "ann" || st.Pending != 0 || st.Status != Synced || summary(st.Cart) != "mug=1 tea=1" {
				t.Errorf("state %+v (%q), want ann's cart synced with mug=1 tea=1", st, summary(st.Cart))
			}
		},
	}, {
		name: "the policy choose shows both carts and holds the guest edits until the shopper picks",
		setup: func(h *harness) {
			guestMug(h)
			h.m.stop()
			h.edit(add("jam")) // a guest op, not sent yet
			h.m.setUser("user:ann", cart.PolicyChoose)
		},
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="tok" since=2 user=user:ann`}},
			{in: func(h *harness) func(*machine) { return got(h, welcomeUser("", "ann", "cart-1")) }},
			{in: serverSays(mergeNote(protocol.MergeInfo{Status: protocol.MergeChoose, Version: 1,
				Guest: cartAt(2, "mug=1"), User: cartNamed("u-ann", 1, "tea=1")}))},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartNamed("u-ann", 1, "tea=1"), nil)) },
				want: []string{"confirm u-ann@1", "load"}, // the jam is not pushed
				then: func(t testing.TB, h *harness) {
					st := h.m.snapshot()
					if st.Choice == nil || summary(st.Choice.Guest) != "mug=1" || summary(st.Choice.User) != "tea=1" ||
						st.Merge == nil || st.Merge.Status != protocol.MergeChoose {
						t.Errorf("Choice %+v, Merge %+v; want both carts to choose from", st.Choice, st.Merge)
					}
					if st.User != "ann" || summary(st.Cart) != "jam=1 tea=1" || st.Status != Synced {
						t.Errorf("state %+v (%q), want ann's synced cart with the pending jam", st, summary(st.Cart))
					}
				}},
			{in: func(h *harness) func(*machine) {
				return func(m *machine) { must(h.t, m.choose(h.now, cart.PolicyMerge)) }
			}, want: []string{"send choose c2 merge"}},
			{in: serverSays(mergeNote(protocol.MergeInfo{Status: protocol.MergeMerged, Version: 2,
				Result: &cart.MergeResult{Policy: cart.PolicyMerge, Added: 1, Items: 1}})), want: []string{"send push p3 me/2"}},
			{in: func(h *harness) func(*machine) {
				return got(h, pushedCart(1, cartNamed("u-ann", 2, "mug=1", "tea=1")))
			}, want: []string{"confirm u-ann@2"}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p3", cartNamed("u-ann", 3, "jam=1", "mug=1", "tea=1"), applied(protocol.OpID{Client: "me", Seq: 2}, 3)))
			}, want: []string{"confirm u-ann@3 done=me/2"}},
		},
		check: func(t testing.TB, h *harness) {
			st := h.m.snapshot()
			if st.Choice != nil || st.Pending != 0 || st.Status != Synced || st.Confirmed != 3 || summary(st.Cart) != "jam=1 mug=1 tea=1" {
				t.Errorf("state %+v (%q), want the merged cart at 3 with nothing pending", st, summary(st.Cart))
			}
			if st.Merge == nil || st.Merge.Status != protocol.MergeMerged {
				t.Errorf("Merge %+v, want merged", st.Merge)
			}
			if err := h.m.choose(h.now, cart.PolicyKeep); !errors.Is(err, ErrNoChoice) {
				t.Errorf("choose after the merge = %v, want ErrNoChoice", err)
			}
		},
	}, {
		name:  "the choice message by message: one choose per answer, an error lets the shopper choose again",
		setup: func(h *harness) { h.m.setUser("user:ann", cart.PolicyChoose) },
		steps: []machineStep{
			{in: helloSays(func(t testing.TB, hello *protocol.Message) {
				if hello.UserToken != "user:ann" || hello.Policy != cart.PolicyChoose {
					t.Errorf("hello %+v, want the user token and the policy choose", hello)
				}
			}), want: []string{`send hello h1 token="" since=0 user=user:ann`}},
			{in: func(h *harness) func(*machine) { return got(h, welcomeUser("", "ann", "g-1")) }},
			{in: serverSays(mergeNote(protocol.MergeInfo{Status: protocol.MergeChoose, Version: 4,
				Guest: cartNamed("g-1", 2, "mug=1"), User: cartNamed("u-ann", 4, "tea=1")}))},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("h1", cartNamed("u-ann", 4, "tea=1"), map[string]uint64{}))
			}, want: []string{"confirm u-ann@4", "load"},
				then: func(t testing.TB, h *harness) {
					if st := h.m.snapshot(); st.Choice == nil || st.User != "ann" || st.Status != Synced {
						t.Fatalf("state %+v, want a choice on ann's synced cart", st)
					}
				}},
			{in: func(h *harness) func(*machine) {
				return func(m *machine) {
					must(h.t, m.choose(h.now, cart.PolicyReplace))
					if err := m.choose(h.now, cart.PolicyMerge); !errors.Is(err, ErrNoChoice) {
						h.t.Errorf("second choose = %v, want ErrNoChoice while the first is unanswered", err)
					}
				}
			}, want: []string{"send choose c2 replace"}},
			{in: func(h *harness) func(*machine) { return got(h, errMsg("c2", protocol.ErrInternal, nil)) },
				then: func(t testing.TB, h *harness) {
					if st := h.m.snapshot(); st.Choice == nil || st.LastError == nil || st.LastError.Code != protocol.ErrInternal {
						t.Errorf("state %+v, want the choice still open and the error shown", st)
					}
				}},
			{in: func(h *harness) func(*machine) {
				return func(m *machine) { must(h.t, m.choose(h.now, cart.PolicyReplace)) }
			}, want: []string{"send choose c3 replace"}},
			{in: serverSays(mergeNote(protocol.MergeInfo{Status: protocol.MergeMerged, Version: 5,
				Result: &cart.MergeResult{Policy: cart.PolicyReplace, Added: 1, Replaced: 1, Items: 1}}))},
			// The merged cart, pushed with no op: taken, and nothing sent.
			{in: func(h *harness) func(*machine) { return got(h, pushedCart(4, cartNamed("u-ann", 5, "mug=1"))) },
				want: []string{"confirm u-ann@5"}},
		},
		check: func(t testing.TB, h *harness) {
			st := h.m.snapshot()
			if st.Choice != nil || st.Merge == nil || st.Merge.Status != protocol.MergeMerged || st.Confirmed != 5 || summary(st.Cart) != "mug=1" {
				t.Errorf("state %+v (%q), want the merged cart at 5", st, summary(st.Cart))
			}
		},
	}, {
		name:  "an expired user token: edits are kept, shown and stamped for the user's cart, and sent once after the next login",
		setup: signedIn,
		steps: []machineStep{
			{in: func(h *harness) func(*machine) { h.m.stop(); return opened(h) },
				want: []string{`send hello h1 token="tok" since=1 user=user:ann`}},
			{in: func(h *harness) func(*machine) { return got(h, errMsg("h1", protocol.ErrTokenExpired, nil)) },
				want: []string{endedBy(protocol.ErrTokenExpired, "token_expired")},
				then: func(t testing.TB, h *harness) {
					h.m.stop() // the driver closed the connection
					if st := h.m.snapshot(); !st.NeedsLogin || st.LastError == nil || st.LastError.Code != protocol.ErrTokenExpired {
						t.Errorf("state %+v, want NeedsLogin after token_expired", st)
					}
					h.edit(add("tea"))
					st := h.m.snapshot()
					if summary(st.Cart) != "mug=1 tea=1" || st.Pending != 1 || st.Waiting != 0 || st.User != "ann" {
						t.Errorf("state %+v (%q), want ann's cart with the tea pending", st, summary(st.Cart))
					}
					if p := outboxStored(h); len(p) != 1 || p[0].Cart != "u-ann" {
						t.Errorf("stored outbox %+v, want the tea for u-ann", p)
					}
				}},
			{in: logIn("user:ann", ""), // the host page's fresh token
				then: func(t testing.TB, h *harness) {
					if h.m.snapshot().NeedsLogin {
						t.Error("still NeedsLogin after setUser")
					}
				}},
			{in: opened, want: []string{`send hello h1 token="tok" since=1 user=user:ann`}},
			{in: func(h *harness) func(*machine) { return got(h, welcomeUser("", "ann", "cart-1")) }},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartNamed("u-ann", 1, "mug=1"), nil)) },
				want: []string{"confirm u-ann@1", "load", "send push p2 me/2"}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p2", cartNamed("u-ann", 2, "mug=1", "tea=1"), applied(protocol.OpID{Client: "me", Seq: 2}, 2)))
			}, want: []string{"confirm u-ann@2 done=me/2"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.NeedsLogin || st.Pending != 0 || st.Status != Synced || summary(st.Cart) != "mug=1 tea=1" {
				t.Errorf("state %+v (%q), want synced with mug=1 tea=1", st, summary(st.Cart))
			}
		},
	}, {
		name:  "a device token refused on a user's hello (the server's secret changed): a new one is asked for; the user cart and its edits stay",
		setup: signedIn,
		steps: []machineStep{
			{in: func(h *harness) func(*machine) { h.m.stop(); h.edit(add("tea")); return opened(h) },
				want: []string{`send hello h1 token="tok" since=1 user=user:ann`}},
			{in: func(h *harness) func(*machine) {
				return got(h, errMsg("h1", protocol.ErrUnauthorized, func(pe *protocol.Error) { pe.Token = protocol.TokenDevice }))
			},
				want: []string{`swap "tok" -> ""`, "load", "end: " + protocol.Errorf(protocol.ErrUnauthorized, "unauthorized").Error()},
				then: func(t testing.TB, h *harness) {
					h.m.stop() // the driver closed the connection
					if st := h.m.snapshot(); st.NeedsLogin || st.Cart.ID != "u-ann" || summary(st.Cart) != "mug=1 tea=1" || st.Pending != 1 {
						t.Errorf("state %+v (%q), want ann's cart with the tea pending and no login asked for", st, summary(st.Cart))
					}
				}},
			{in: reopened, want: []string{`send hello h1 token="" since=1 user=user:ann`}},
			{in: func(h *harness) func(*machine) { return got(h, welcomeUser("dev-2", "ann", "cart-2")) },
				want: []string{`swap "" -> "dev-2"`}},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartNamed("u-ann", 1, "mug=1"), nil)) },
				want: []string{"confirm u-ann@1", "load", "send push p2 me/2"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.NeedsLogin || h.m.token != "dev-2" || st.User != "ann" {
				t.Errorf("state %+v, token %q; want ann on the new token dev-2", st, h.m.token)
			}
		},
	}, {
		name:  "a user token refused as unauthorized is a login to redo: the device token and guest cart stay",
		setup: func(h *harness) { connected(h, 1) },
		steps: []machineStep{
			{in: logIn("forged", ""), want: []string{errUserChangedEnd()}},
			{in: func(h *harness) func(*machine) { h.m.stop(); return opened(h) },
				want: []string{`send hello h1 token="tok" since=1 user=forged`}},
			{in: func(h *harness) func(*machine) { return got(h, errMsg("h1", protocol.ErrUnauthorized, nil)) },
				want: []string{endedBy(protocol.ErrUnauthorized, "unauthorized")}, // no swap: the token is kept
				then: func(t testing.TB, h *harness) {
					h.m.stop() // the driver closed the connection
					if st := h.m.snapshot(); !st.NeedsLogin || h.m.token != "tok" || st.Cart.ID != "cart-1" {
						t.Errorf("state %+v, token %q; want NeedsLogin on cart-1 with the token kept", st, h.m.token)
					}
					if st, err := h.store.Load(context.Background()); err != nil || st.DeviceToken != "tok" {
						t.Errorf("stored device token %q (%v), want tok kept", st.DeviceToken, err)
					}
				}},
			{in: logIn("", "")}, // go on as a guest
			{in: opened, want: []string{`send hello h1 token="tok" since=1`}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("", "cart-1")) }},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartAt(1), nil)) },
				want: []string{"confirm cart-1@1", "load"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.NeedsLogin || st.Status != Synced || st.Cart.ID != "cart-1" || st.User != "" {
				t.Errorf("state %+v, want synced as a guest on cart-1", st)
			}
		},
	}, {
		name: "after a logout the user's edits wait: not shown on the fresh guest cart, not sent on it, sent at the next login",
		setup: func(h *harness) {
			signedIn(h)
			h.m.stop()
			h.edit(add("tea")) // for u-ann
			h.m.setUser("", "")
		},
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="tok" since=1`}},
			// The guest cart went to ann: a new device token, a fresh cart.
			{in: func(h *harness) func(*machine) { return got(h, welcome("tok2", "cart-2")) },
				want: []string{`swap "tok" -> "tok2"`}},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartNamed("cart-2", 0), nil)) },
				want: []string{"confirm cart-2@0", "load"},
				then: func(t testing.TB, h *harness) {
					st := h.m.snapshot()
					if st.User != "" || st.Cart.ID != "cart-2" || summary(st.Cart) != "" || st.Pending != 1 || st.Waiting != 1 || st.Status != Synced {
						t.Errorf("state %+v (%s %q), want the empty cart-2 synced with the tea waiting", st, st.Cart.ID, summary(st.Cart))
					}
					if st, err := h.store.Load(context.Background()); err != nil || st.DeviceToken != "tok2" {
						t.Errorf("stored device token %q (%v), want the new tok2", st.DeviceToken, err)
					}
				}},
			// The guest's jam is sent; the tea waits.
			{in: func(h *harness) func(*machine) { h.edit(add("jam")); return woken(h) },
				want: []string{"send push p2 id1/1"}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p2", cartNamed("cart-2", 1, "jam=1"), applied(protocol.OpID{Client: "id1", Seq: 1}, 1)))
			}, want: []string{"confirm cart-2@1 done=id1/1"}},
			{in: logIn("user:ann", ""), want: []string{errUserChangedEnd()}},
			{in: func(h *harness) func(*machine) { h.m.stop(); return opened(h) },
				want: []string{`send hello h1 token="tok2" since=1 user=user:ann`}},
			{in: func(h *harness) func(*machine) { return got(h, welcomeUser("", "ann", "cart-2")) }},
			{in: serverSays(mergeNote(protocol.MergeInfo{Status: protocol.MergeMerged, Version: 2,
				Result: &cart.MergeResult{Policy: cart.PolicyMerge, Added: 1, Items: 1}}))},
			// The tea is of an earlier client id: its acked seq first.
			{in: func(h *harness) func(*machine) {
				return got(h, reply("h1", cartNamed("u-ann", 2, "jam=1", "mug=1"), nil))
			},
				want: []string{"confirm u-ann@2", "load", "send sync s2 since=2 clients=[me]"}},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("s2", cartNamed("u-ann", 2, "jam=1", "mug=1"), map[string]uint64{"me": 1}))
			}, want: []string{"confirm u-ann@2", "load", "send push p3 me/2"},
				then: func(t testing.TB, h *harness) {
					if p := h.m.pending; len(p) != 1 || p[0].SKU != "tea" || p[0].Cart != "u-ann" {
						t.Errorf("pushed %+v, want the tea for u-ann", p)
					}
				}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p3", cartNamed("u-ann", 3, "jam=1", "mug=1", "tea=1"), applied(protocol.OpID{Client: "me", Seq: 2}, 3)))
			}, want: []string{"confirm u-ann@3 done=me/2"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.User != "ann" || st.Pending != 0 || st.Status != Synced || summary(st.Cart) != "jam=1 mug=1 tea=1" {
				t.Errorf("state %+v (%q), want ann's cart synced with jam=1 mug=1 tea=1", st, summary(st.Cart))
			}
		},
	}, {
		name:  "an expired guest cart the server does not name: its ops, and those made before any sync, go to the fresh cart",
		setup: func(h *harness) { expiredGuest(h, false) },
		steps: expiredGuestSteps(),
		check: checkExpiredGuest,
	}, {
		name:  "an expired guest cart the server does not name, after a reload that never saw its welcome",
		setup: func(h *harness) { expiredGuest(h, true) },
		steps: expiredGuestSteps(),
		check: checkExpiredGuest,
	}, {
		name:  "a push to a cart purged while connected: the connection ends, the next hello gets the fresh cart, the op goes to it",
		setup: func(h *harness) { connected(h, 0); h.edit(add("tea")) },
		steps: []machineStep{
			{in: woken, want: []string{"send push p2 me/1"}},
			{in: func(h *harness) func(*machine) { return got(h, errMsg("p2", protocol.ErrCartExpired, nil)) },
				want: []string{"confirm @0", "restamp cart-1 -> ", "load", endedBy(protocol.ErrCartExpired, "cart_expired"), "load"}},
			{in: func(h *harness) func(*machine) { h.m.stop(); return opened(h) },
				want: []string{`send hello h1 token="tok" since=0`}},
			{in: func(h *harness) func(*machine) { return got(h, errMsg("h1", protocol.ErrCartExpired, nil)) },
				want: []string{"load"}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("tok2", "cart-2")) },
				want: []string{`swap "tok" -> "tok2"`}},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartNamed("cart-2", 0), nil)) },
				want: []string{"confirm cart-2@0", "load", "send sync s2 since=0 clients=[me]"}},
			{in: func(h *harness) func(*machine) {
				return got(h, reply("s2", cartNamed("cart-2", 0), map[string]uint64{"me": 0}))
			},
				want: []string{"confirm cart-2@0", "load", "send push p3 me/1"}},
			{in: func(h *harness) func(*machine) {
				return got(h, ack("p3", cartNamed("cart-2", 1, "tea=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 1)))
			}, want: []string{"confirm cart-2@1 done=me/1"}},
		},
		check: func(t testing.TB, h *harness) {
			st := h.m.snapshot()
			if !st.CartExpired || st.Status != Synced || st.Cart.ID != "cart-2" || st.Pending != 0 || summary(st.Cart) != "tea=1" {
				t.Errorf("state %+v, want the fresh cart-2 synced with the tea", st)
			}
			if len(st.Dropped) != 0 {
				t.Errorf("Dropped = %+v, want none", st.Dropped)
			}
			if permanent(protocol.ErrCartExpired) {
				t.Error("cart_expired stops Run")
			}
		},
	}, {
		name: "Config.UserToken logs in until setUser; a logout then says a guest hello and takes the fresh guest cart",
		steps: []machineStep{
			{in: openedAs("user:ann"), want: []string{`send hello h1 token="" since=0 user=user:ann`}},
			{in: func(h *harness) func(*machine) { return got(h, welcomeUser("tok", "ann", "cart-1")) },
				want: []string{`swap "" -> "tok"`}},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartNamed("u-ann", 0), nil)) },
				want: []string{"confirm u-ann@0", "load"},
				then: func(t testing.TB, h *harness) {
					if st := h.m.snapshot(); st.User != "ann" || st.Status != Synced {
						t.Errorf("state %+v, want ann's cart synced", st)
					}
				}},
			{in: logIn("", ""), want: []string{errUserChangedEnd()}},
			{in: func(h *harness) func(*machine) { h.m.stop(); return openedAs("user:ann")(h) },
				want: []string{`send hello h1 token="tok" since=0`}},
			{in: func(h *harness) func(*machine) { return got(h, welcome("tok2", "cart-2")) },
				want: []string{`swap "tok" -> "tok2"`}},
			{in: func(h *harness) func(*machine) { return got(h, reply("h1", cartNamed("cart-2", 0), nil)) },
				want: []string{"confirm cart-2@0", "load"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.User != "" || st.Status != Synced || st.Cart.ID != "cart-2" {
				t.Errorf("state %+v, want the fresh guest cart-2 synced", st)
			}
		},
	}, {
		name:  "forbidden (a guest cart merged by a login elsewhere) ends the connection, shown, with no wait asked",
		setup: func(h *harness) { connected(h, 0); h.edit(add("mug")) },
		steps: []machineStep{
			{in: woken, want: []string{"send push p2 me/1"}},
			{in: func(h *harness) func(*machine) {
				return got(h, errMsg("p2", protocol.ErrForbidden, func(pe *protocol.Error) { pe.Message = "merged" }))
			}, want: []string{endedBy(protocol.ErrForbidden, "merged")}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.LastError == nil || st.LastError.Code != protocol.ErrForbidden || st.Pending != 1 {
				t.Errorf("state %+v, want forbidden shown and the mug kept", st)
			}
			if permanent(protocol.ErrForbidden) {
				t.Error("forbidden stops Run")
			}
			if _, wait := h.m.stop(); wait != 0 {
				t.Errorf("retry after %v, want no wait asked", wait)
			}
		},
	}, {
		// An older server that says no cart_expired: the welcome's new
		// device token and cart are all the machine learns.
		name: "a new device token for an expired guest cart, with no cart_expired: the old cart's add goes to the new one, a change of its line is dropped",
		setup: func(h *harness) {
			guestMug(h)
			h.m.stop()
			h.edit(add("tea"))                                           // on cart-1
			h.edit(cart.Op{Kind: cart.KindSet, SKU: "mug", Quantity: 3}) // of cart-1's line
		},
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="tok" since=2`}},
			{in: serverSays(welcome("tok2", "cart-2")),
				want: []string{`swap "tok" -> "tok2"`, "restamp cart-1 -> ", "confirm done=me/3", "load"}},
			{in: serverSays(reply("h1", cartNamed("cart-2", 0), nil)),
				want: []string{"confirm cart-2@0", "load", "send push p2 me/2"}},
		},
		check: func(t testing.TB, h *harness) {
			st := h.m.snapshot()
			if len(st.Dropped) != 1 || st.Dropped[0].SKU != "mug" || st.Dropped[0].Cart != "cart-1" || st.Pending != 1 || st.Cart.ID != "cart-2" || summary(st.Cart) != "tea=1" {
				t.Errorf("state %+v, want the fresh cart-2 with the tea on its way, and the mug's change of cart-1 dropped", st)
			}
		},
	}, {
		name:  "a choice left open on an earlier connection and resolved meanwhile is cleared by the next hello's reply",
		setup: annChooses,
		steps: []machineStep{
			{in: reopened, want: []string{`send hello h1 token="tok" since=1 user=user:ann`},
				then: func(t testing.TB, h *harness) {
					if h.m.snapshot().Choice == nil {
						t.Error("the choice was gone before the server's word")
					}
				}},
			{in: serverSays(welcomeUser("", "ann", "cart-1"))},
			{in: serverSays(reply("h1", cartNamed("u-ann", 2, "mug=1", "tea=1"), nil)),
				want: []string{"confirm u-ann@2", "load"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Choice != nil || summary(st.Cart) != "mug=1 tea=1" {
				t.Errorf("Choice %+v on %q, want none on the merged cart", st.Choice, summary(st.Cart))
			}
		},
	}, {
		name:  "a logout while a choice is open drops the choice",
		setup: annChooses,
		steps: []machineStep{
			{in: logIn("", ""), want: []string{errUserChangedEnd()}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Choice != nil {
				t.Errorf("Choice %+v after a logout, want none", st.Choice)
			}
		},
	}, {
		// Each merge notice answers the choose in flight: one that asks
		// again (status choose) takes the shopper's next pick. (The
		// documented server answers a choose with merged or already;
		// the machine does not count on it.)
		name:  "a merge notice that asks again after a choose takes the shopper's next pick",
		setup: annChooses,
		steps: []machineStep{
			{in: chooses(cart.PolicyReplace, nil), want: []string{"send choose c2 replace"}},
			{in: chooses(cart.PolicyMerge, ErrNoChoice)}, // the first is unanswered
			{in: serverSays(mergeNote(protocol.MergeInfo{Status: protocol.MergeChoose, Version: 2,
				Guest: cartAt(1, "mug=2"), User: cartNamed("u-ann", 2, "tea=2")})),
				then: func(t testing.TB, h *harness) {
					if st := h.m.snapshot(); st.Choice == nil || st.Choice.Version != 2 {
						t.Errorf("Choice %+v, want the one asked again at version 2", st.Choice)
					}
				}},
			{in: chooses(cart.PolicyMerge, nil), want: []string{"send choose c3 merge"}},
			{in: serverSays(mergeNote(protocol.MergeInfo{Status: protocol.MergeMerged, Version: 3,
				Result: &cart.MergeResult{Policy: cart.PolicyMerge, Added: 1, Items: 2}}))},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Choice != nil || st.Merge == nil || st.Merge.Status != protocol.MergeMerged {
				t.Errorf("Choice %+v, Merge %+v; want no choice, merged", st.Choice, st.Merge)
			}
		},
	}, {
		// The choice shown is from the earlier connection; the new one
		// has not been welcomed: the pick cannot be sent yet, and the
		// choice is not gone (ErrNoChoice would say so).
		name:  "choose on a connection not yet welcomed is refused as not connected; after the welcome it is sent",
		setup: annChooses,
		steps: []machineStep{
			{in: reopened, want: []string{`send hello h1 token="tok" since=1 user=user:ann`}},
			{in: chooses(cart.PolicyMerge, ErrNotConnected),
				then: func(t testing.TB, h *harness) {
					if h.m.snapshot().Choice == nil {
						t.Error("the choice was dropped by a choose before the welcome")
					}
				}},
			{in: serverSays(welcomeUser("", "ann", "cart-1"))},
			{in: serverSays(mergeNote(protocol.MergeInfo{Status: protocol.MergeChoose, Version: 1,
				Guest: cartAt(1, "mug=1"), User: cartNamed("u-ann", 1, "tea=1")}))},
			{in: chooses(cart.PolicyMerge, nil), want: []string{"send choose c2 merge"}},
		},
	}}
	runMachineCases(t, tests)
}

// annChooses brings h to a connection on ann's cart u-ann at version 1
// with token "tok" and guest cart cart-1, whose login merge waits for the
// shopper's choice.
func annChooses(h *harness) {
	h.m.setUser("user:ann", cart.PolicyChoose)
	h.do(opened(h))
	h.do(got(h, welcomeUser("tok", "ann", "cart-1")))
	h.do(got(h, mergeNote(protocol.MergeInfo{Status: protocol.MergeChoose, Version: 1,
		Guest: cartAt(1, "mug=1"), User: cartNamed("u-ann", 1, "tea=1")})))
	h.do(got(h, reply("h1", cartNamed("u-ann", 1, "tea=1"), nil)))
}

// chooses is the shopper's pick of policy; choose must return want.
func chooses(policy cart.Policy, want error) func(h *harness) func(*machine) {
	return func(h *harness) func(*machine) {
		return func(m *machine) {
			if err := m.choose(h.now, policy); !errors.Is(err, want) {
				h.t.Errorf("choose(%s) = %v, want %v", policy, err, want)
			}
		}
	}
}

// The Engine's part in logins, with no server: a connection that answers
// the hello with what the test says (or nothing), and records the hellos.

// helloDialer dials connections that answer every hello with answer's
// messages and say nothing else.
type helloDialer struct {
	answer func(hello *protocol.Message) []*protocol.Message // nil: never answer
	mu     sync.Mutex
	hellos []*protocol.Message
}

func (d *helloDialer) dial(context.Context) (Conn, error) {
	return &helloConn{d: d, in: make(chan []byte, 8), done: make(chan struct{})}, nil
}

// seen returns the hellos so far.
func (d *helloDialer) seen() []*protocol.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.hellos)
}

type helloConn struct {
	d    *helloDialer
	in   chan []byte
	done chan struct{}
	once sync.Once
}

func (c *helloConn) Read(ctx context.Context) ([]byte, error) {
	select {
	case b := <-c.in:
		return b, nil
	case <-c.done:
		return nil, errors.New("helloConn: closed")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *helloConn) Write(ctx context.Context, b []byte) error {
	m, err := protocol.Decode(b)
	if err != nil {
		return err
	}
	if m.Type != protocol.TypeHello {
		return nil
	}
	c.d.mu.Lock()
	c.d.hellos = append(c.d.hellos, m)
	c.d.mu.Unlock()
	if c.d.answer == nil {
		return nil
	}
	for _, a := range c.d.answer(m) {
		b, err := protocol.Encode(a)
		if err != nil {
			return err
		}
		c.in <- b
	}
	return nil
}

func (c *helloConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

// Run does not dial while the user token it presented is refused, until
// SetUser; then at once.
func TestEngineAwaitsLogin(t *testing.T) {
	for _, code := range []protocol.ErrorCode{protocol.ErrTokenExpired, protocol.ErrUnauthorized} {
		t.Run(string(code), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				d := &helloDialer{answer: func(h *protocol.Message) []*protocol.Message {
					if h.UserToken == "" {
						return nil
					}
					return []*protocol.Message{{Type: protocol.TypeError, ID: h.ID, Error: protocol.Errorf(code, "log in again")}}
				}}
				e := newEngine(t, NewMemStorage(), func(c *Config) { c.Dial = d.dial })
				must(t, e.SetUser("user:ann", ""))
				start(t, e)
				synctest.Wait()
				if st := e.Snapshot(); !st.NeedsLogin || st.Status != Offline || st.LastError == nil || st.LastError.Code != code {
					t.Errorf("state %+v, want offline, needing a login, with %s shown", st, code)
				}
				time.Sleep(10 * time.Minute)
				synctest.Wait()
				if n := len(d.seen()); n != 1 {
					t.Errorf("%d hellos in 10 minutes of a refused login, want the first only", n)
				}
				must(t, e.SetUser("", "")) // continue as a guest
				synctest.Wait()
				if hs := d.seen(); len(hs) != 2 || hs[1].UserToken != "" {
					t.Errorf("hellos %+v, want a guest hello at once after SetUser", hs)
				}
				if st := e.Snapshot(); st.NeedsLogin {
					t.Error("still NeedsLogin after SetUser")
				}
			})
		})
	}
}

// The hellos present Config.UserToken until SetUser; SetUser reconnects at
// once when it changes the user, and not when it does not.
func TestEngineSetUserReconnects(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &helloDialer{}
		e := newEngine(t, NewMemStorage(), func(c *Config) {
			c.Dial = d.dial
			c.UserToken = func() string { return "user:ann" }
		})
		start(t, e)
		synctest.Wait()
		must(t, e.SetUser("user:ann", cart.PolicyKeep)) // replaces Config.UserToken
		synctest.Wait()
		must(t, e.SetUser("user:ann", cart.PolicyKeep)) // the same again
		synctest.Wait()
		must(t, e.SetUser("", "")) // a logout
		synctest.Wait()
		var got []string
		for _, h := range d.seen() {
			got = append(got, h.UserToken+"/"+string(h.Policy))
		}
		if want := []string{"user:ann/", "user:ann/keep", "/"}; !slices.Equal(got, want) {
			t.Errorf("hellos presented %q, want %q", got, want)
		}
	})
}

// SetUser during the wait before a redial ends the wait: the next dial is
// made at once (the fake clock has not moved), and the backoff starts over.
func TestRunSetUserEndsBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const base, hold, ceil = time.Minute, time.Hour, time.Hour
		log := &retryLog{}
		var dials atomic.Int32
		e := newEngine(t, NewMemStorage(), func(c *Config) {
			c.BackoffBase, c.BackoffHold, c.BackoffCap = base, hold, ceil
			c.Logger = slog.New(log)
			c.Dial = func(context.Context) (Conn, error) {
				dials.Add(1)
				return nil, errors.New("connection refused")
			}
		})
		start(t, e)
		synctest.Wait() // the first dial failed; Run waits
		if n := dials.Load(); n != 1 {
			t.Fatalf("%d dials before SetUser, want 1", n)
		}
		must(t, e.SetUser("user:ann", ""))
		synctest.Wait()
		if n := dials.Load(); n != 2 {
			t.Errorf("%d dials after SetUser with no time passed, want 2: SetUser redials at once", n)
		}
		first := redialBackoff(0, base, hold, ceil, func() float64 { return 0.5 })
		if waits := log.logged(); !slices.Equal(waits, []time.Duration{first, first}) {
			t.Errorf("waits %v, want [%v %v]: the wait after SetUser's dial starts over", waits, first, first)
		}
	})
}

// SetUser and Choose check what they are given; Choose needs a connection.
func TestEngineLoginArguments(t *testing.T) {
	e := newEngine(t, NewMemStorage(), nil)
	if err := e.SetUser("user:ann", "sometimes"); err == nil {
		t.Error("SetUser took an unknown policy")
	}
	ctx := context.Background()
	if err := e.Choose(ctx, cart.PolicyMerge); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Choose before running = %v, want ErrNotConnected", err)
	}
	if err := e.Choose(ctx, cart.PolicyChoose); err == nil || errors.Is(err, ErrNotConnected) {
		t.Errorf("Choose(choose) = %v, want the policy refused", err)
	}
}

// An account's unsent edit is never carried into a guest cart: after a
// reload (the page no longer knows which carts are users'), a guest hello
// whose device token the server refuses starts a new guest cart, and the
// edit made on the account's cart waits for that account's next login,
// neither sent to the new guest cart nor dropped.
func TestAccountEditsWaitWhenTheDeviceTokenIsRefused(t *testing.T) {
	h := newHarness(t)
	signedIn(h)
	h.m.stop()
	h.edit(add("secret")) // on u-ann, offline
	fresh := newHarness(t)
	fresh.store = h.store
	fresh.read()
	h = fresh
	h.do(opened(h))
	h.do(got(h, errMsg("h1", protocol.ErrUnauthorized, nil)))
	h.m.stop()
	h.do(opened(h))
	h.do(got(h, welcome("dev2", "cart-9")))
	out := h.do(got(h, reply("h1", cartNamed("cart-9", 0), nil)))
	for _, o := range out {
		if strings.HasPrefix(o, "send push") || strings.HasPrefix(o, "restamp") {
			t.Errorf("after the refused token: %q; the account's edit must not go to the guest cart", out)
		}
	}
	st := h.m.snapshot()
	if len(st.Dropped) != 0 || st.Pending != 1 || st.Waiting != 1 || summary(st.Cart) != "" {
		t.Errorf("state %+v (%q); want the secret waiting, not shown, not dropped", st, summary(st.Cart))
	}
	if p := outboxStored(h); len(p) != 1 || p[0].SKU != "secret" || p[0].Cart != "u-ann" {
		t.Errorf("outbox %+v, want the secret still for u-ann", p)
	}
}

// Stepping a line of a guest cart that then expired down to 0 is a
// removal that holds on the fresh cart: dropped without a word, not
// reported as an edit that could not be kept.
func TestExpiredCartsStepDownToZeroIsNotReported(t *testing.T) {
	h := newHarness(t)
	guestMug(h)
	h.m.stop()
	h.edit(cart.Op{Kind: cart.KindSet, SKU: "mug", Quantity: 0})
	h.edit(add("tea"))
	h.do(opened(h))
	out := h.do(serverSays(welcome("tok2", "cart-2"))(h))
	if want := []string{`swap "tok" -> "tok2"`, "restamp cart-1 -> ", "confirm done=me/2", "load"}; !slices.Equal(out, want) {
		t.Errorf("effects %q, want %q", out, want)
	}
	h.do(serverSays(reply("h1", cartNamed("cart-2", 0), nil))(h))
	if st := h.m.snapshot(); len(st.Dropped) != 0 || summary(st.Cart) != "tea=1" || st.Pending != 1 {
		t.Errorf("state %+v (%q), want the tea carried and nothing reported", st, summary(st.Cart))
	}
}

// A user's cart that expired (the operator keeps user carts for a while
// only): the welcome comes, then cart_expired in answer to the hello, and
// no cart follows on this connection. The connection ends, to try again
// after the backoff, rather than wait for ever for the hello's cart.
func TestExpiredUserCartEndsTheConnection(t *testing.T) {
	h := newHarness(t)
	signedIn(h)
	h.m.stop()
	h.edit(add("tea"))
	h.do(opened(h))
	h.do(got(h, welcomeUser("", "ann", "cart-1")))
	out := h.do(got(h, errMsg("h1", protocol.ErrCartExpired, func(pe *protocol.Error) { pe.Cart = "u-ann" })))
	if !slices.Contains(out, endedBy(protocol.ErrCartExpired, "cart_expired")) {
		t.Fatalf("effects %q, want the connection ended", out)
	}
	if st := h.m.snapshot(); !st.CartExpired || st.Pending != 1 || len(st.Dropped) != 0 {
		t.Errorf("state %+v, want the expiry told and the tea kept for ann", st)
	}
}
