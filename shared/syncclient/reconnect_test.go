package syncclient

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cartsync/cartsync/shared/protocol"
)

func TestRedialBackoff(t *testing.T) {
	const base, hold, ceil = 500 * time.Millisecond, 5 * time.Second, 30 * time.Second
	// The ceiling of each attempt: 0.5, 1, 2, 4 s, then 5 s for 12
	// attempts, then 10, 20, 30 s.
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second}
	for range holdTries {
		want = append(want, hold)
	}
	want = append(want, 10*time.Second, 20*time.Second, 30*time.Second, 30*time.Second)
	for n, w := range want {
		if got := redialBackoff(n, base, hold, ceil, func() float64 { return 1 }); got != w {
			t.Errorf("ceiling of attempt %d = %v, want %v", n, got, w)
		}
		if got := redialBackoff(n, base, hold, ceil, func() float64 { return 0.5 }); got != w/2 {
			t.Errorf("attempt %d with rand 0.5 = %v, want %v", n, got, w/2)
		}
	}
	if got := redialBackoff(1000, base, hold, ceil, func() float64 { return 0.999 }); got != 29970*time.Millisecond {
		t.Errorf("attempt 1000 with rand 0.999 = %v, want 29.97s", got)
	}
	if got := redialBackoff(0, 0, hold, ceil, func() float64 { return 0.5 }); got != 0 {
		t.Errorf("no base: %v, want 0", got)
	}
	// A hold above the cap is the cap.
	if got := redialBackoff(20, base, time.Minute, ceil, func() float64 { return 1 }); got != ceil {
		t.Errorf("hold above the cap: ceiling %v, want %v", got, ceil)
	}
}

// A server killed every few seconds: each connection got its hello reply
// and stayed up a while, so the delay starts over every time instead of
// growing towards the cap.
func TestBackoffResetsAfterHealthyConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		e := newEngine(t, srv, NewMemStorage(), func(c *Config) { c.Rand = func() float64 { return 0.999 } })
		start(t, e)
		for kill := range 10 {
			waitFor(t, "synced", func() bool { return e.Snapshot().Status == Synced })
			time.Sleep(3 * time.Second)
			before := 0
			srv.do(func() { before = srv.dials })
			srv.kill(false)
			time.Sleep(500 * time.Millisecond)
			synctest.Wait()
			srv.do(func() {
				if srv.dials != before+1 {
					t.Fatalf("kill %d: %d redials within 0.5s of losing a connection that was up 3s, want 1", kill, srv.dials-before)
				}
			})
		}
	})
}

// A connection that never got its hello reply is not healthy, however long
// it lasted: the delay keeps growing.
func TestBackoffGrowsWithoutHelloReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		scriptedEngine(t, sc, func(c *Config) { c.Rand = func() float64 { return 0.999 } })
		var last time.Time
		var waits []time.Duration
		for range 5 {
			p := sc.accept()
			if !last.IsZero() {
				waits = append(waits, time.Since(last))
			}
			p.expect(protocol.TypeHello)
			time.Sleep(5 * time.Second) // no answer
			p.conn.Close()
			last = time.Now()
		}
		for i, w := range waits {
			if ceil := redialBackoff(i, 500*time.Millisecond, 5*time.Second, 30*time.Second, func() float64 { return 1 }); w < ceil*9/10 {
				t.Errorf("wait %d after a connection without hello reply: %v, want about %v", i, w, ceil)
			}
		}
	})
}

// After a 10 s refusal, clients are back within the hold (5 s) of the
// server's return.
func TestBackoffAfterRefusalIsCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		e := newEngine(t, srv, NewMemStorage(), func(c *Config) { c.Rand = func() float64 { return 0.999 } })
		start(t, e)
		waitFor(t, "synced", func() bool { return e.Snapshot().Status == Synced })
		time.Sleep(time.Minute)
		t0 := time.Now()
		srv.do(func() { srv.down = true })
		srv.kill(false)
		time.Sleep(10 * time.Second)
		srv.do(func() { srv.down = false })
		waitFor(t, "synced", func() bool { return e.Snapshot().Status == Synced })
		if d := time.Since(t0); d > 15*time.Second {
			t.Errorf("back %v after a 10s refusal began, want within 15s", d)
		}
	})
}

// going_away ends the connection, and the next dial waits at least the
// retry delay the server asked for, plus jitter.
func TestGoingAwayWaitsRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sc := newScript(t)
		scriptedEngine(t, sc, nil) // rand 0.5: 3s + 0.25s (half of the 0.5s base)
		p := sc.accept()
		p.login(cartAt(0), 0)
		time.Sleep(time.Minute) // a healthy connection
		e := protocol.Errorf(protocol.ErrGoingAway, "restarting")
		e.RetryAfterMS = 3000
		p.send(&protocol.Message{Type: protocol.TypeError, Error: e})
		t0 := time.Now()
		synctest.Wait()
		select {
		case <-p.conn.done:
		default:
			t.Fatal("connection still open after going_away")
		}
		next := sc.accept()
		if d := time.Since(t0); d != 3250*time.Millisecond {
			t.Errorf("redialled %v after going_away with retry_after_ms 3000, want 3.25s (the delay and the base times rand 0.5)", d)
		}
		next.login(cartAt(0), 0)
	})
}

func TestHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		e := newEngine(t, srv, NewMemStorage(), func(c *Config) {
			c.Heartbeat = time.Second
			c.BackoffBase = 100 * time.Millisecond
		})
		start(t, e)
		waitFor(t, "synced", func() bool { return e.Snapshot().Status == Synced })
		time.Sleep(10 * time.Second)
		synctest.Wait()
		srv.do(func() {
			if srv.pings < 9 || srv.dials != 1 {
				t.Errorf("after 10s: %d pings, %d dials; want about 10 pings on 1 connection", srv.pings, srv.dials)
			}
		})

		srv.kill(true) // the peer goes silent
		time.Sleep(2 * time.Second)
		synctest.Wait()
		srv.do(func() {
			if srv.dials != 1 {
				t.Errorf("redialled %d times 2s into the silence, want 0", srv.dials-1)
			}
		})
		time.Sleep(1 * time.Second) // 2.5 beats since the last pong, plus backoff
		synctest.Wait()
		srv.do(func() {
			if srv.dials != 2 {
				t.Errorf("%d dials 3s into the silence, want 2", srv.dials)
			}
		})
		waitFor(t, "synced again", func() bool { return e.Snapshot().Status == Synced })
	})
}

// The server's welcome sets the heartbeat interval.
func TestHeartbeatFromWelcome(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		srv.do(func() { srv.heartbeatMS = 5000 })
		e := newEngine(t, srv, NewMemStorage(), func(c *Config) { c.Heartbeat = time.Second })
		start(t, e)
		waitFor(t, "synced", func() bool { return e.Snapshot().Status == Synced })
		time.Sleep(20*time.Second + time.Millisecond)
		synctest.Wait()
		srv.do(func() {
			if srv.pings != 4 {
				t.Errorf("%d pings in 20s at 5s, want 4", srv.pings)
			}
		})
	})
}

func TestReconnectBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		srv.do(func() { srv.down = true })
		e := newEngine(t, srv, NewMemStorage(), func(c *Config) { c.Rand = func() float64 { return 0.999 } })
		start(t, e)
		// Waits just under 0.5, 1, 2, 4, then 5s twelve times, then 10,
		// 20 and 30s: 20 dials in 150s.
		time.Sleep(150 * time.Second)
		synctest.Wait()
		srv.do(func() {
			if srv.dials < 18 || srv.dials > 21 {
				t.Errorf("%d dials in 150s of a server down, want about 20", srv.dials)
			}
			srv.down = false
		})
		if st := e.Snapshot().Status; st != Offline {
			t.Errorf("status %v with the server down, want offline", st)
		}
		waitFor(t, "synced", func() bool { return e.Snapshot().Status == Synced })

		// After a stable connection the backoff starts over.
		time.Sleep(time.Minute)
		before := 0
		srv.do(func() { before = srv.dials })
		srv.kill(false)
		time.Sleep(500 * time.Millisecond)
		synctest.Wait()
		srv.do(func() {
			if srv.dials != before+1 {
				t.Errorf("%d redials within 0.5s of losing a stable connection, want 1", srv.dials-before)
			}
		})
	})
}

func TestRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := newFakeServer(t)
		e := newEngine(t, srv, NewMemStorage(), nil)
		start(t, e)
		synctest.Wait()
		if err := e.Run(context.Background()); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run = %v, want ErrRunning", err)
		}
	})
}

func TestClientIDGenerated(t *testing.T) {
	a := newEngine(t, nil, NewMemStorage(), nil)
	b := newEngine(t, nil, NewMemStorage(), nil)
	if len(a.ClientID()) != 32 || a.ClientID() == b.ClientID() {
		t.Errorf("client ids %q and %q, want two different 32-digit hex ids", a.ClientID(), b.ClientID())
	}
	if _, err := New(Config{Storage: NewMemStorage(), ClientID: "bad\nid"}); err == nil {
		t.Error("New accepted a client id with a newline")
	}
}

func TestBackoff(t *testing.T) {
	const base, ceil = 500 * time.Millisecond, 30 * time.Second
	tests := []struct {
		name    string
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"first, low", 0, 0, 0},
		{"first, half", 0, 0.5, 250 * time.Millisecond},
		{"first, high", 0, 0.999, 499500 * time.Microsecond},
		{"third, half", 2, 0.5, time.Second},
		{"sixth, half", 5, 0.5, 8 * time.Second},
		{"capped", 6, 0.5, 15 * time.Second},
		{"far past the cap", 1000, 0.5, 15 * time.Second},
		{"capped, high", 1000, 0.999, 29970 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := backoff(tt.attempt, base, ceil, func() float64 { return tt.rnd })
			if got != tt.want {
				t.Errorf("backoff(%d) with rand %v = %v, want %v", tt.attempt, tt.rnd, got, tt.want)
			}
		})
	}
	for n := range 64 {
		bound := min(ceil, base<<min(n, 20))
		for _, r := range []float64{0, 0.3, 0.9999999} {
			if d := backoff(n, base, ceil, func() float64 { return r }); d < 0 || d >= bound {
				t.Errorf("backoff(%d) with rand %v = %v, want in [0, %v)", n, r, d, bound)
			}
		}
	}
}
