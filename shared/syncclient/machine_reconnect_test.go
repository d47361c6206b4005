package syncclient

import (
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/protocol"
)

// The connection's timers as machine steps: heartbeats and the silence
// limit, and what makes a connection count as healthy for the backoff
// (Run's redials themselves are tested in reconnect_test.go).

func TestMachineReconnect(t *testing.T) {
	second := func(h *harness) { h.timers = true; h.m.cfg.Heartbeat = time.Second }
	runMachineCases(t, []machineCase{{
		// A ping every heartbeat; every message heard pushes the silence
		// limit (2.5 heartbeats) back; once it passes, the connection
		// ends.
		name:  "pings every heartbeat, and the connection ends 2.5 heartbeats into a silence",
		setup: second,
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`, "timer ping 1s", "timer silence 2.5s", "timer deadline 2.5s"}},
			{in: serverSays(welcome("tok", "cart-1")), want: []string{"timer silence 2.5s", `swap "" -> "tok"`, "timer deadline 2.5s"}},
			{in: serverSays(reply("h1", cartAt(1), nil)), want: []string{"timer silence 2.5s", "timer deadline 2.5s",
				"timer resync 5m0s", "confirm cart-1@1", "load", "timer stable 2s", "timer deadline 0s"}},
			{in: timerFires(timerPing), want: []string{"load", "send ping"}},
			{in: serverSays(&protocol.Message{Type: protocol.TypePong}), want: []string{"timer silence 2.5s"}},
			{in: timerFires(timerPing), want: []string{"load", "send ping"}},
			{in: timerFires(timerPing), want: []string{"load", "send ping"}}, // no answer: still open
			{in: timerFires(timerSilence), want: []string{"end: " + errSilent.Error()}},
			{in: timerFires(timerPing), want: nil}, // ended: no more pings
		},
		check: func(t testing.TB, h *harness) {
			if d := h.armed[timerPing]; d != time.Second {
				t.Errorf("ping every %v, want 1s", d)
			}
		},
	}, {
		name:  "a connection whose hello is never answered does not count as healthy, however long it lasts",
		setup: second,
		steps: []machineStep{
			{in: opened, want: []string{`send hello h1 token="" since=0`, "timer ping 1s", "timer silence 2.5s", "timer deadline 2.5s"}},
			{in: timerFires(timerPing), want: []string{"load", "send ping"}},
			{in: serverSays(&protocol.Message{Type: protocol.TypePong}), want: []string{"timer silence 2.5s"}},
			{in: timerFires(timerPing), want: []string{"load", "send ping"}},
			{in: serverSays(&protocol.Message{Type: protocol.TypePong}), want: []string{"timer silence 2.5s"}},
			{in: timerFires(timerDeadline), want: []string{"end: " + errRequestTimeout.Error()}},
		},
		check: func(t testing.TB, h *harness) {
			if _, ok := h.armed[timerStable]; ok {
				t.Error("the stable timer was armed without a hello reply")
			}
			if progressed, wait := h.m.stop(); progressed || wait != 0 {
				t.Errorf("stop = %v, %v; want no progress and no wait asked for", progressed, wait)
			}
		},
	}, {
		// The stable timer is one way (TestMachine); an ack of every op
		// of a push is the other, at once.
		name:  "a fully acknowledged push counts as healthy before the stable timer fires",
		setup: func(h *harness) { connected(h, 1) },
		steps: []machineStep{
			{in: editedOp(add("mug")), want: []string{"send push p2 me/1"}},
			{in: serverSays(ack("p2", cartAt(2, "mug=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 2))),
				want: []string{"confirm cart-1@2 done=me/1"}},
		},
		check: func(t testing.TB, h *harness) {
			if progressed, _ := h.m.stop(); !progressed {
				t.Error("a fully acknowledged push does not reset the backoff")
			}
		},
	}, {
		name:  "a push acknowledged in part does not count as healthy",
		setup: func(h *harness) { h.edit(add("mug")); h.edit(add("tea")); connected(h, 1) }, // pushes p2 me/1,me/2
		steps: []machineStep{
			{in: serverSays(ack("p2", cartAt(2, "mug=1"), applied(protocol.OpID{Client: "me", Seq: 1}, 2))),
				want: []string{"confirm cart-1@2 done=me/1"}},
		},
		check: func(t testing.TB, h *harness) {
			if progressed, _ := h.m.stop(); progressed {
				t.Error("a push acknowledged in part, before the stable timer, reset the backoff")
			}
		},
	}})
}
