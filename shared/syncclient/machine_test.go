package syncclient

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The machine driven directly, input by input, with no goroutine, socket
// or clock: each step feeds one input and names the effects it asks for.

// harness drives a machine as the Engine does, synchronously: it carries
// out the storage effects on a MemStorage, feeds the answers back, and
// writes every effect down as text (timers only with timers set).
type harness struct {
	t      testing.TB
	m      *machine
	store  *MemStorage
	now    time.Time
	timers bool
	armed  map[timerID]time.Duration
}

func newHarness(t testing.TB) *harness {
	cfg := Config{
		ClientID: "me",
		Rand:     func() float64 { return 0.5 },
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}.withDefaults()
	ids := 0
	h := &harness{
		t:     t,
		store: NewMemStorage(),
		now:   time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC),
		armed: map[timerID]time.Duration{},
	}
	h.m = newMachine(cfg, func() string { ids++; return fmt.Sprintf("id%d", ids) })
	h.read()
	return h
}

// read reads the storage into the machine, as the Engine does before it
// dials and at Reload.
func (h *harness) read() {
	st, err := h.store.Load(context.Background())
	must(h.t, err)
	h.m.loadedStored(h.now, st)
	h.m.take()
}

// edit stores and shows an op, as Engine.edit does.
func (h *harness) edit(op cart.Op) {
	op = h.m.newOp(op)
	stored, err := h.store.Enqueue(context.Background(), op.Client, func(seq uint64) cart.Op {
		op.Seq = seq
		return op
	})
	must(h.t, err)
	h.m.enqueued(stored)
	h.m.edited(h.now)
}

// do feeds one input and returns its effects as text.
func (h *harness) do(in func(m *machine)) []string {
	ctx := context.Background()
	in(h.m)
	effs, _ := h.m.take()
	var out []string
	for i := 0; i < len(effs); i++ {
		switch ef := effs[i].(type) {
		case sendMsg:
			out = append(out, "send "+describe(ef.m))
		case setTimer:
			h.armed[ef.t] = ef.d
			if ef.d == 0 {
				delete(h.armed, ef.t)
			}
			if h.timers {
				out = append(out, fmt.Sprintf("timer %s %v", ef.t, ef.d))
			}
		case endConn:
			out = append(out, "end: "+ef.err.Error())
		case storeConfirm:
			must(h.t, h.store.Confirm(ctx, ef.c, ef.done))
			s := "confirm"
			if ef.c != nil {
				s += fmt.Sprintf(" %s@%d", ef.c.ID, ef.c.Version)
			}
			if len(ef.done) > 0 {
				s += " done=" + opIDs(ef.done)
			}
			out = append(out, s)
		case storeRestamp:
			must(h.t, h.store.Restamp(ctx, ef.from, ef.to))
			out = append(out, fmt.Sprintf("restamp %s -> %s", ef.from, ef.to))
		case storeReissue:
			_, err := h.store.Reissue(ctx, ef.from, ef.expected, ef.to)
			must(h.t, err)
			out = append(out, fmt.Sprintf("reissue %s above %d as %s", ef.from, ef.expected, ef.to))
		case storeSwap:
			stored, err := h.store.SwapDeviceToken(ctx, ef.old, ef.next)
			must(h.t, err)
			out = append(out, fmt.Sprintf("swap %q -> %q", ef.old, ef.next))
			h.m.tokenSwapped(h.now, stored)
			more, _ := h.m.take()
			effs = append(effs, more...)
		case storeLoad:
			if readLater(effs[i+1:]) {
				effs = append(effs, ef)
				break
			}
			st, err := h.store.Load(ctx)
			must(h.t, err)
			out = append(out, "load")
			h.m.storageRead(h.now, st)
			more, _ := h.m.take()
			effs = append(effs, more...)
		default:
			h.t.Fatalf("unknown effect %T", ef)
		}
	}
	return out
}

func opIDs(ids []protocol.OpID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprintf("%s/%d", id.Client, id.Seq)
	}
	return strings.Join(s, ",")
}

// describe writes a message to the server down in one line.
func describe(m *protocol.Message) string {
	switch m.Type {
	case protocol.TypeHello:
		s := fmt.Sprintf("hello %s token=%q since=%d", m.ID, m.DeviceToken, m.Since)
		if m.UserToken != "" {
			s += " user=" + m.UserToken
		}
		return s
	case protocol.TypePush:
		ops := make([]protocol.OpID, len(m.Ops))
		for i, op := range m.Ops {
			ops[i] = opID(op)
		}
		return fmt.Sprintf("push %s %s", m.ID, opIDs(ops))
	case protocol.TypeSync:
		return fmt.Sprintf("sync %s since=%d clients=%v", m.ID, m.Since, m.Clients)
	case protocol.TypeChoose:
		return fmt.Sprintf("choose %s %s", m.ID, m.Policy)
	case protocol.TypePong:
		return "pong " + m.ID
	}
	return m.Type
}

// Inputs.

func opened(h *harness) func(*machine) {
	return func(m *machine) { m.start(h.now, "") }
}

func got(h *harness, msg *protocol.Message) func(*machine) {
	return func(m *machine) { m.received(h.now, msg) }
}

func woken(h *harness) func(*machine) {
	return func(m *machine) { m.woken(h.now) }
}

func fire(h *harness, t timerID) func(*machine) {
	return func(m *machine) { m.fired(h.now, t) }
}

func welcome(token, cartID string) *protocol.Message {
	return &protocol.Message{Type: protocol.TypeWelcome, DeviceToken: token, CartID: cartID}
}

func reply(id string, c *cart.Cart, acked map[string]uint64) *protocol.Message {
	return &protocol.Message{Type: protocol.TypeCart, ID: id, Cart: c, Acked: acked}
}

func ack(id string, c *cart.Cart, rs ...protocol.Result) *protocol.Message {
	return &protocol.Message{Type: protocol.TypeAck, ID: id, Results: rs, Cart: c}
}

func errMsg(id string, code protocol.ErrorCode, mod func(*protocol.Error)) *protocol.Message {
	pe := &protocol.Error{Code: code, Message: string(code)}
	if mod != nil {
		mod(pe)
	}
	return &protocol.Message{Type: protocol.TypeError, ID: id, Error: pe}
}

func add(sku string) cart.Op { return cart.Op{Kind: cart.KindAdd, SKU: sku, Quantity: 1} }

// cartAt is cart-1 at version v with lines "sku=quantity".
func cartAt(v uint64, lines ...string) *cart.Cart {
	c := &cart.Cart{ID: "cart-1", Version: v, Lines: []*cart.Line{}}
	for _, l := range lines {
		key, q, _ := strings.Cut(l, "=")
		n, _ := strconv.Atoi(q)
		c.Lines = append(c.Lines, &cart.Line{Key: key, SKU: key, Quantity: n})
	}
	return c
}

func applied(op protocol.OpID, v uint64) protocol.Result {
	return protocol.Result{Client: op.Client, Seq: op.Seq, Status: protocol.StatusApplied, Version: v}
}

// summary writes a cart's lines down as sorted "key=quantity".
func summary(c *cart.Cart) string {
	var out []string
	for _, l := range c.Lines {
		out = append(out, fmt.Sprintf("%s=%d", l.Key, l.Quantity))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// connected brings h to a connection on cart-1 at version v, with token
// "tok", whose hello was answered; ops queued before are pushed.
func connected(h *harness, v uint64) {
	h.do(opened(h))
	h.do(got(h, welcome("tok", "cart-1")))
	h.do(got(h, reply("h1", cartAt(v), nil)))
}

// machineStep is one input and the effects it must ask for; then, if set,
// checks what the machine holds after it.
type machineStep struct {
	in   func(h *harness) func(*machine)
	want []string
	then func(t testing.TB, h *harness)
}

// machineCase is a case of a table of the machine: setup, then the steps
// in order, then check.
type machineCase struct {
	name  string
	setup func(h *harness) // before the first step
	steps []machineStep
	check func(t testing.TB, h *harness) // after the last
}

// runMachineCases runs each case on a fresh harness.
func runMachineCases(t *testing.T, cases []machineCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.setup != nil {
				tt.setup(h)
				h.m.take()
			}
			for i, s := range tt.steps {
				got := h.do(s.in(h))
				if !slices.Equal(got, s.want) {
					t.Fatalf("step %d:\n got  %q\n want %q", i+1, got, s.want)
				}
				if s.then != nil {
					s.then(t, h)
					h.m.take()
				}
			}
			if tt.check != nil {
				tt.check(t, h)
			}
		})
	}
}

func TestMachine(t *testing.T) {
	type step struct {
		in   func(h *harness) func(*machine)
		want []string
	}
	tests := []struct {
		name  string
		setup func(h *harness) // before the first step
		steps []step
		check func(t testing.TB, h *harness) // after the last
	}{{
		name:  "first connection stores the token and pushes what was queued offline",
		setup: func(h *harness) { h.edit(add("mug")) },
		steps: []step{
			{opened, []string{`send hello h1 token="" since=0`}},
			{func(h *harness) func(*machine) { return got(h, welcome("tok", "cart-1")) },
				[]string{`swap "" -> "tok"`}},
			{func(h *harness) func(*machine) { return got(h, reply("h1", cartAt(1), nil)) },
				[]string{"confirm cart-1@1", "load", "send push p2 me/1"}},
			{func(h *harness) func(*machine) {
				return got(h, ack("p2", cartAt(2, "mug=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 2)))
			}, []string{"confirm cart-1@2 done=me/1"}},
		},
		check: func(t testing.TB, h *harness) {
			st := h.m.snapshot()
			if st.Status != Synced || st.Pending != 0 || summary(st.Cart) != "mug=1" || h.m.token != "tok" {
				t.Errorf("state %+v, token %q; want synced with mug=1 and token tok", st, h.m.token)
			}
			if _, ok := h.armed[timerDeadline]; ok {
				t.Error("the request deadline is still armed with nothing in flight")
			}
		},
	}, {
		name: "another tab stored a token first: that one is used",
		steps: []step{
			{opened, []string{`send hello h1 token="" since=0`}},
			{func(h *harness) func(*machine) {
				_, err := h.store.SwapDeviceToken(context.Background(), "", "theirs")
				must(h.t, err)
				return got(h, welcome("tok", "cart-1"))
			}, []string{`swap "" -> "tok"`, "end: " + errTokenChanged.Error()}},
		},
		check: func(t testing.TB, h *harness) {
			if h.m.token != "theirs" {
				t.Errorf("token %q, want theirs", h.m.token)
			}
		},
	}, {
		name:  "a pushed cart with a gap waits for the ack in flight, which closes it",
		setup: func(h *harness) { connected(h, 1); h.edit(add("mug")) },
		steps: []step{
			{woken,
				[]string{"send push p2 me/1"}},
			{func(h *harness) func(*machine) {
				return got(h, &protocol.Message{Type: protocol.TypeCart, From: 2, Cart: cartAt(3, "mug=1", "tea=1"),
					By: []protocol.OpID{{Client: "other", Seq: 1}}})
			}, nil},
			{func(h *harness) func(*machine) {
				return got(h, ack("p2", cartAt(2, "mug=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 2)))
			}, []string{"confirm cart-1@2 done=me/1", "confirm cart-1@3 done=other/1"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Confirmed != 3 || st.Status != Synced || st.Pending != 0 || summary(st.Cart) != "mug=1 tea=1" {
				t.Errorf("state %+v (%q), want the held cart, mug=1 tea=1, synced at version 3", st, summary(st.Cart))
			}
		},
	}, {
		name:  "a pushed cart with a gap and nothing in flight is closed with a sync",
		setup: func(h *harness) { connected(h, 1) },
		steps: []step{
			{func(h *harness) func(*machine) {
				return got(h, &protocol.Message{Type: protocol.TypeCart, From: 2, Cart: cartAt(3, "tea=1"),
					By: []protocol.OpID{{Client: "other", Seq: 2}}})
			}, []string{"send sync s2 since=1 clients=[]"}},
		},
	}, {
		name:  "out_of_order drops what the server has and resends from what it expects",
		setup: func(h *harness) { connected(h, 1); h.edit(add("a")); h.edit(add("b")) },
		steps: []step{
			{woken,
				[]string{"send push p2 me/1,me/2"}},
			{func(h *harness) func(*machine) {
				return got(h, errMsg("p2", protocol.ErrOutOfOrder, func(pe *protocol.Error) {
					pe.Expected = &protocol.OpID{Client: "me", Seq: 2}
				}))
			}, []string{"confirm done=me/1", "send sync s3 since=1 clients=[me]"}},
		},
	}, {
		name:  "a retryable refusal waits for the retry timer",
		setup: func(h *harness) { connected(h, 1); h.edit(add("a")); h.timers = true },
		steps: []step{
			{woken,
				[]string{"send push p2 me/1", "timer deadline 1m2.5s"}},
			{func(h *harness) func(*machine) {
				return got(h, errMsg("p2", protocol.ErrOverloaded, func(pe *protocol.Error) {
					pe.Retryable, pe.RetryAfterMS = true, 3000
				}))
			}, []string{"timer silence 1m2.5s", "timer deadline 1m2.5s", "timer retry 3s", "timer deadline 0s"}},
			{func(h *harness) func(*machine) { return fire(h, timerRetry) },
				[]string{"send push p3 me/1", "timer deadline 1m2.5s"}},
		},
	}, {
		name:  "an op the server will never take is dropped and reported",
		setup: func(h *harness) { connected(h, 1); h.edit(add("a")); h.edit(add("b")) },
		steps: []step{
			{woken,
				[]string{"send push p2 me/1,me/2"}},
			{func(h *harness) func(*machine) { return got(h, errMsg("p2", protocol.ErrInvalid, nil)) },
				[]string{"send push p3 me/1"}},
			{func(h *harness) func(*machine) { return got(h, errMsg("p3", protocol.ErrInvalid, nil)) },
				[]string{"confirm done=me/1", "send push p4 me/2"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); len(st.Rejected) != 1 || st.Rejected[0].Seq != 1 {
				t.Errorf("rejected %+v, want me/1", st.Rejected)
			}
		},
	}, {
		name:  "an expired user token: wait for a login, keep the device token",
		setup: func(h *harness) { h.m.setUser("user:ann", "") },
		steps: []step{
			{opened, []string{`send hello h1 token="" since=0 user=user:ann`}},
			{func(h *harness) func(*machine) { return got(h, errMsg("h1", protocol.ErrTokenExpired, nil)) },
				[]string{"end: " + protocol.Errorf(protocol.ErrTokenExpired, "token_expired").Error()}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); !st.NeedsLogin {
				t.Errorf("state %+v, want NeedsLogin", st)
			}
		},
	}, {
		name: "a refused device token is forgotten with its cart; the outbox stays, its cart's ops for the next cart",
		setup: func(h *harness) {
			connected(h, 4)
			h.edit(add("a"))
			h.m.stop()
		},
		steps: []step{
			{opened, []string{`send hello h1 token="tok" since=4`}},
			{func(h *harness) func(*machine) { return got(h, errMsg("h1", protocol.ErrUnauthorized, nil)) },
				[]string{`swap "tok" -> ""`, "confirm @0", "restamp cart-1 -> ", "load",
					"end: " + protocol.Errorf(protocol.ErrUnauthorized, "unauthorized").Error(), "load"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); h.m.token != "" || st.Confirmed != 0 || len(st.Dropped) != 0 || st.Pending != 1 || summary(st.Cart) != "a=1" {
				t.Errorf("state %+v, token %q; want no token, no cart, the op of the refused cart kept for the next", st, h.m.token)
			}
		},
	}, {
		name:  "cart_expired at hello: the welcome's fresh cart follows, the old cart's add goes to it",
		setup: func(h *harness) { connected(h, 2); h.edit(add("a")); h.m.stop() },
		steps: []step{
			{opened, []string{`send hello h1 token="tok" since=2`}},
			{func(h *harness) func(*machine) {
				return got(h, errMsg("", protocol.ErrCartExpired, func(pe *protocol.Error) { pe.Cart = "cart-1" }))
			}, []string{"confirm @0", "restamp cart-1 -> ", "load", "load"}},
			{func(h *harness) func(*machine) { return got(h, welcome("tok2", "cart-2")) },
				[]string{`swap "tok" -> "tok2"`}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); !st.CartExpired || len(st.Dropped) != 0 || st.Pending != 1 || summary(st.Cart) != "a=1" {
				t.Errorf("state %+v, want CartExpired and the add shown, pending", st)
			}
		},
	}, {
		name: "a login merge that waits for the shopper holds the guest cart's ops",
		setup: func(h *harness) {
			connected(h, 1)
			h.edit(add("a"))
			h.m.stop()
			h.m.setUser("user:ann", "")
		},
		steps: []step{
			{opened, []string{`send hello h1 token="tok" since=1 user=user:ann`}},
			{func(h *harness) func(*machine) {
				w := welcome("", "u-ann")
				w.User, w.GuestCartID = "ann", "cart-1"
				return got(h, w)
			}, nil},
			{func(h *harness) func(*machine) {
				return got(h, &protocol.Message{Type: protocol.TypeMerge, Merge: &protocol.MergeInfo{Status: protocol.MergeChoose}})
			}, nil},
			{func(h *harness) func(*machine) {
				c := cartAt(1)
				c.ID = "u-ann"
				return got(h, reply("h1", c, nil))
			}, []string{"confirm u-ann@1", "load"}},
			{func(h *harness) func(*machine) {
				return func(m *machine) {
					if err := m.choose(h.now, cart.PolicyReplace); err != nil {
						h.t.Errorf("choose: %v", err)
					}
					if err := m.choose(h.now, cart.PolicyMerge); err != ErrNoChoice {
						h.t.Errorf("a second choose: %v, want ErrNoChoice", err)
					}
				}
			}, []string{"send choose c2 replace"}},
			{func(h *harness) func(*machine) {
				return got(h, &protocol.Message{Type: protocol.TypeMerge, Merge: &protocol.MergeInfo{Status: protocol.MergeMerged}})
			}, []string{"send push p3 me/1"}},
		},
	}, {
		name:  "a ping is answered; silence ends the connection",
		setup: func(h *harness) { connected(h, 1) },
		steps: []step{
			{func(h *harness) func(*machine) { return got(h, &protocol.Message{Type: protocol.TypePing, ID: "x"}) },
				[]string{"send pong x"}},
			{func(h *harness) func(*machine) { return fire(h, timerPing) },
				[]string{"load", "send ping"}},
			{func(h *harness) func(*machine) { return fire(h, timerSilence) },
				[]string{"end: " + errSilent.Error()}},
			{func(h *harness) func(*machine) { return got(h, &protocol.Message{Type: protocol.TypePing, ID: "y"}) },
				nil}, // ended: nothing more
		},
	}, {
		name: "a login elsewhere merged the guest cart: its ops move to the user cart",
		setup: func(h *harness) {
			connected(h, 1)
			h.edit(add("a"))
			h.m.stop()
		},
		steps: []step{
			{opened, []string{`send hello h1 token="tok" since=1`}},
			{func(h *harness) func(*machine) {
				w := welcome("tok2", "cart-2")
				w.PrevCartID, w.MergedInto = "cart-1", "u-ann"
				return got(h, w)
			}, []string{"restamp cart-1 -> u-ann", `swap "tok" -> "tok2"`, "load"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Pending != 1 || st.Waiting != 1 || len(st.Dropped) != 0 {
				t.Errorf("state %+v, want the op kept for the user cart", st)
			}
		},
	}, {
		name:  "an ack read more than a second after the storage reads it back",
		setup: func(h *harness) { connected(h, 1); h.edit(add("a")) },
		steps: []step{
			{woken,
				[]string{"send push p2 me/1"}},
			{func(h *harness) func(*machine) {
				h.now = h.now.Add(2 * time.Second)
				return got(h, ack("p2", cartAt(2, "a=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 2)))
			}, []string{"confirm cart-1@2 done=me/1", "load"}},
		},
	}, {
		name:  "an ack that moved further than its ops reads the storage, then asks about another tab's ops",
		setup: func(h *harness) { connected(h, 1); h.edit(add("mug")) },
		steps: []step{
			{woken,
				[]string{"send push p2 me/1"}},
			{func(h *harness) func(*machine) {
				_, err := h.store.Enqueue(context.Background(), "other", func(seq uint64) cart.Op {
					return cart.Op{Client: "other", Seq: seq, Cart: "cart-1", Kind: cart.KindAdd, SKU: "tea", Quantity: 1}
				})
				must(h.t, err)
				return got(h, ack("p2", cartAt(3, "mug=1", "tea=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 2)))
			}, []string{"confirm cart-1@3 done=me/1", "load", "send sync s3 since=3 clients=[other]"}},
			{func(h *harness) func(*machine) {
				return got(h, reply("s3", cartAt(3, "mug=1", "tea=1"), map[string]uint64{"other": 1}))
			}, []string{"confirm cart-1@3 done=other/1", "load"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); st.Pending != 0 || st.Status != Synced {
				t.Errorf("state %+v, want synced with nothing pending", st)
			}
		},
	}, {
		name:  "the catalog changed: the same version again, with notices an edit resolves",
		setup: func(h *harness) { connected(h, 1) },
		steps: []step{
			{func(h *harness) func(*machine) {
				c := cartAt(2, "mug=2")
				c.Lines[0].Details.Price, c.Lines[0].Details.Currency = 500, "EUR"
				return got(h, &protocol.Message{Type: protocol.TypeCart, From: 1, Cart: c, By: []protocol.OpID{{Client: "x", Seq: 1}}})
			}, []string{"confirm cart-1@2 done=x/1"}},
			{func(h *harness) func(*machine) {
				c := cartAt(2, "mug=2")
				c.Lines[0].Details.Price, c.Lines[0].Details.Currency = 500, "EUR"
				c.Notices = []cart.Notice{{Line: "mug", PriceChanged: &cart.PriceChange{From: 500, To: 600, Currency: "EUR"}}}
				c.Totals = map[string]int64{"EUR": 1200}
				return got(h, &protocol.Message{Type: protocol.TypeCart, From: 2, Cart: c})
			}, []string{"confirm cart-1@2"}},
		},
		check: func(t testing.TB, h *harness) {
			if st := h.m.snapshot(); len(st.Notices) != 1 || st.Totals["EUR"] != 1200 {
				t.Fatalf("state %+v, want the price notice and totals at the new price", st)
			}
			h.edit(cart.Op{Kind: cart.KindDetails, SKU: "mug", Details: &cart.Details{Price: 600, Currency: "EUR"}})
			if st := h.m.snapshot(); len(st.Notices) != 0 || st.Totals["EUR"] != 1200 {
				t.Errorf("state %+v, want the notice resolved by the pending edit", st)
			}
		},
	}, {
		name:  "the welcome sets the heartbeat; a quiet cart is synced after Config.Resync",
		setup: func(h *harness) { h.timers = true },
		steps: []step{
			{opened, []string{`send hello h1 token="" since=0`, "timer ping 25s", "timer silence 1m2.5s", "timer deadline 1m2.5s"}},
			{func(h *harness) func(*machine) {
				w := welcome("", "cart-1")
				w.HeartbeatMS = 10000
				return got(h, w)
			}, []string{"timer silence 1m2.5s", "timer ping 10s", "timer silence 25s", "timer deadline 25s"}},
			{func(h *harness) func(*machine) { return got(h, reply("h1", cartAt(1), nil)) },
				[]string{"timer silence 25s", "timer deadline 25s", "timer resync 5m0s", "confirm cart-1@1", "load",
					"timer stable 2s", "timer deadline 0s"}},
			{func(h *harness) func(*machine) { return fire(h, timerResync) },
				[]string{"send sync s2 since=1 clients=[]", "timer deadline 25s"}},
		},
	}, {
		name:  "a connection that stayed up resets the backoff; a login ends it",
		setup: func(h *harness) { connected(h, 1) },
		steps: []step{
			{func(h *harness) func(*machine) { return fire(h, timerStable) }, nil},
			{func(h *harness) func(*machine) {
				return func(m *machine) {
					if !m.setUser("user:ann", "") {
						h.t.Error("setUser reported no change")
					}
					m.userChanged()
				}
			}, []string{"end: " + errUserChanged.Error()}},
		},
		check: func(t testing.TB, h *harness) {
			if err := h.m.choose(h.now, cart.PolicyMerge); err != ErrNotConnected {
				t.Errorf("choose on an ended connection: %v, want ErrNotConnected", err)
			}
			if progressed, _ := h.m.stop(); !progressed {
				t.Error("a connection that stayed up does not reset the backoff")
			}
			if err := h.m.choose(h.now, cart.PolicyMerge); err != ErrNotConnected {
				t.Errorf("choose without a connection: %v, want ErrNotConnected", err)
			}
		},
	}, {
		name:  "the heartbeat reads the storage: ops another tab queued and closed on are sent",
		setup: func(h *harness) { connected(h, 1) },
		steps: []step{
			{func(h *harness) func(*machine) {
				_, err := h.store.Enqueue(context.Background(), "closed-tab", func(seq uint64) cart.Op {
					return cart.Op{Client: "closed-tab", Seq: seq, Cart: "cart-1", Kind: cart.KindAdd, SKU: "tea", Quantity: 1}
				})
				must(h.t, err)
				return fire(h, timerPing)
			}, []string{"load", "send ping", "send push p2 closed-tab/1"}},
		},
	}, {
		name: "the welcome's limits replace the configured ones",
		steps: []step{
			{opened, []string{`send hello h1 token="" since=0`}},
			{func(h *harness) func(*machine) {
				w := welcome("tok", "cart-1")
				lim := cart.DefaultLimits
				lim.MaxQuantity, lim.MaxContribs = 7, 0
				w.Limits = &lim
				return got(h, w)
			}, []string{`swap "" -> "tok"`}},
		},
		check: func(t testing.TB, h *harness) {
			if h.m.limits.MaxQuantity != 7 || h.m.limits.MaxContribs != cart.DefaultLimits.MaxContribs {
				t.Errorf("limits %+v, want the welcome's MaxQuantity 7 and the configured MaxContribs", h.m.limits)
			}
		},
	}, {
		name:  "going_away ends the connection and asks for a wait",
		setup: func(h *harness) { connected(h, 1) },
		steps: []step{
			{func(h *harness) func(*machine) {
				return got(h, errMsg("", protocol.ErrGoingAway, func(pe *protocol.Error) { pe.RetryAfterMS = 1500 }))
			}, []string{"end: " + protocol.Errorf(protocol.ErrGoingAway, "going_away").Error()}},
		},
		check: func(t testing.TB, h *harness) {
			if _, wait := h.m.stop(); wait != 1500*time.Millisecond {
				t.Errorf("retry after %v, want 1.5s", wait)
			}
		},
	}}
	cases := make([]machineCase, len(tests))
	for i, tt := range tests {
		cases[i] = machineCase{name: tt.name, setup: tt.setup, check: tt.check}
		for _, s := range tt.steps {
			cases[i].steps = append(cases[i].steps, machineStep{in: s.in, want: s.want})
		}
	}
	runMachineCases(t, cases)
}

// A reply older than the confirmed cart is not taken (an instance's cache
// behind another's commit), unless the server says its store was restored
// from an older backup (Reset): then its cart is the cart now.
func TestResetReplyReplacesANewerCopy(t *testing.T) {
	for _, reset := range []bool{false, true} {
		h := newHarness(t)
		connected(h, 3)
		h.m.stop()
		h.do(opened(h))
		h.do(got(h, welcome("", "cart-1")))
		r := reply("h1", cartAt(1, "mug=1"), nil)
		r.Reset = reset
		h.do(got(h, r))
		st := h.m.snapshot()
		switch {
		case reset && (st.Confirmed != 1 || summary(st.Cart) != "mug=1" || st.Cart.ID != "cart-1"):
			t.Errorf("after a reset to v1: %s v%d %q, want cart-1 v1 mug=1", st.Cart.ID, st.Confirmed, summary(st.Cart))
		case !reset && st.Confirmed != 3:
			t.Errorf("after an older reply without reset: v%d, want v3 kept", st.Confirmed)
		}
		if stored, err := h.store.Load(context.Background()); err != nil || stored.Cart == nil || (reset && stored.Cart.Version != 1) || (!reset && stored.Cart.Version != 3) {
			t.Errorf("reset %v: stored %+v, %v", reset, stored.Cart, err)
		}
	}
}
