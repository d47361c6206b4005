package syncserver

import (
	"math/rand/v2"
	"testing"
	"time"
)

// Shutdown closes connections at random moments of the spread and asks each
// client back at a random moment of the following spread: both evenly
// spread, never all at once.
func TestFarewellsSpreadOverWindow(t *testing.T) {
	const n, spread = 4000, 2 * time.Second
	rnd := rand.New(rand.NewPCG(1, 2)).Float64
	plan := farewells(n, spread, rnd)
	if len(plan) != n {
		t.Fatalf("%d farewells for %d connections", len(plan), n)
	}
	var closes, returns [4]int // per quarter of the spread
	seen := map[int]bool{}
	for i, f := range plan {
		if seen[f.conn] {
			t.Fatalf("connection %d closed twice", f.conn)
		}
		seen[f.conn] = true
		if i > 0 && f.at < plan[i-1].at {
			t.Fatalf("farewell %d at %v before farewell %d at %v: not in order", i, f.at, i-1, plan[i-1].at)
		}
		back := f.at + f.retryAfter
		if f.at < 0 || f.at >= spread {
			t.Fatalf("closed at %v, want within [0, %v)", f.at, spread)
		}
		if f.retryAfter < minRetryAfter || back < spread || back >= 2*spread+minRetryAfter {
			t.Fatalf("closed at %v and asked back after %v: back at %v, want within [%v, %v)", f.at, f.retryAfter, back, spread, 2*spread)
		}
		closes[f.at*4/spread]++
		returns[min(3, (back-spread)*4/spread)]++
	}
	for q := range 4 {
		if closes[q] < n/4*8/10 || returns[q] < n/4*8/10 {
			t.Errorf("quarter %d of the spread: %d closes, %d returns of %d; want about %d each", q, closes[q], returns[q], n, n/4)
		}
	}
	for _, f := range farewells(3, 0, rnd) {
		if f.at != 0 || f.retryAfter != 0 {
			t.Errorf("no spread: farewell %+v, want at once without a delay", f)
		}
	}
}
