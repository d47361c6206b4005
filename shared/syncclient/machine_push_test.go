package syncclient

import (
	"testing"
	"time"
)

// Config.PushDelay: a push waits that long after an edit on this engine,
// taking the edits made meanwhile with it; ops queued longer ago go at once.

// after moves the harness's clock on by d, then feeds in.
func after(d time.Duration, in func(h *harness) func(*machine)) func(h *harness) func(*machine) {
	return func(h *harness) func(*machine) { h.now = h.now.Add(d); return in(h) }
}

// acked is what an ack asks for with timers shown (the connection's
// timers pushed back: news of the server), then rest.
func acked(rest ...string) []string {
	return append([]string{"timer silence 1m2.5s", "timer deadline 1m2.5s", "timer resync 5m0s"}, rest...)
}

func TestMachinePushDelay(t *testing.T) {
	delayed := func(h *harness) {
		h.m.cfg.PushDelay = 20 * time.Millisecond
		connected(h, 1)
		h.timers = true
	}
	runMachineCases(t, []machineCase{{
		name:  "an edit's push waits, and takes the edits made meanwhile",
		setup: delayed,
		steps: []machineStep{
			{in: editedOp(add("a")), want: []string{"timer push 20ms"}},
			{in: after(5*time.Millisecond, editedOp(add("b"))), want: nil},
			{in: after(10*time.Millisecond, woken), want: nil},
			{in: after(5*time.Millisecond, timerFires(timerPush)),
				want: []string{"send push p2 me/1,me/2", "timer deadline 1m2.5s"}},
			{in: serverSays(ack("p2", cartAt(3, "a=1", "b=1"), applied(engOp(1), 2), applied(engOp(2), 3))),
				want: acked("confirm cart-1@3 done=me/1,me/2", "timer deadline 0s")},
		},
	}, {
		name:  "the wait does not move back with each edit",
		setup: delayed,
		steps: []machineStep{
			{in: editedOp(add("a")), want: []string{"timer push 20ms"}},
			{in: after(15*time.Millisecond, editedOp(add("b"))), want: nil},
			{in: after(5*time.Millisecond, timerFires(timerPush)),
				want: []string{"send push p2 me/1,me/2", "timer deadline 1m2.5s"}},
		},
	}, {
		name:  "edits made while a push is out wait for the ack or the delay, whichever is later",
		setup: delayed,
		steps: []machineStep{
			{in: editedOp(add("a")), want: []string{"timer push 20ms"}},
			{in: after(20*time.Millisecond, timerFires(timerPush)),
				want: []string{"send push p2 me/1", "timer deadline 1m2.5s"}},
			{in: after(time.Millisecond, editedOp(add("b"))), want: nil},
			{in: after(2*time.Millisecond, serverSays(ack("p2", cartAt(2, "a=1"), applied(engOp(1), 2)))),
				want: acked("confirm cart-1@2 done=me/1", "timer push 18ms", "timer deadline 0s")},
			{in: after(18*time.Millisecond, timerFires(timerPush)),
				want: []string{"send push p3 me/2", "timer deadline 1m2.5s"}},
		},
	}, {
		name:  "a wait ended by another input arms the next at once; a late fire of its timer re-arms it",
		setup: delayed,
		steps: []machineStep{
			{in: editedOp(add("a")), want: []string{"timer push 20ms"}},
			{in: after(20*time.Millisecond, woken), want: []string{"send push p2 me/1", "timer deadline 1m2.5s"}},
			{in: after(time.Millisecond, editedOp(add("b"))), want: nil},
			{in: after(time.Millisecond, serverSays(ack("p2", cartAt(2, "a=1"), applied(engOp(1), 2)))),
				want: acked("confirm cart-1@2 done=me/1", "timer push 19ms", "timer deadline 0s")},
			{in: timerFires(timerPush), want: []string{"timer push 19ms"}},
			{in: after(19*time.Millisecond, timerFires(timerPush)),
				want: []string{"send push p3 me/2", "timer deadline 1m2.5s"}},
		},
	}, {
		name: "ops queued before the connection go at once",
		setup: func(h *harness) {
			h.m.cfg.PushDelay = 20 * time.Millisecond
			h.edit(add("a"))
			h.now = h.now.Add(time.Second)
		},
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`}},
			{in: serverSays(welcome("tok", "cart-1")), want: []string{`swap "" -> "tok"`}},
			{in: serverSays(reply("h1", cartAt(1), nil)), want: []string{"confirm cart-1@1", "load", "send push p2 me/1"}},
		},
	}, {
		name:  "without a delay, an edit is pushed at once",
		setup: func(h *harness) { connected(h, 1); h.timers = true },
		steps: []machineStep{
			{in: editedOp(add("a")), want: []string{"send push p2 me/1", "timer deadline 1m2.5s"}},
		},
	}})
}

// An edit made while connected and synced shows as syncing at once, before
// the machine's next step sends it (Engine.edit publishes the state right
// after queueing the op): never "synced" with an edit waiting.
func TestMachineEditedIsSyncingAtOnce(t *testing.T) {
	h := newHarness(t)
	h.m.cfg.PushDelay = 20 * time.Millisecond
	connected(h, 1)
	if h.m.status != Synced {
		t.Fatalf("connected: %v, want synced", h.m.status)
	}
	h.edit(add("a"))
	if h.m.status != Syncing {
		t.Errorf("after an edit: %v, want syncing", h.m.status)
	}
}
