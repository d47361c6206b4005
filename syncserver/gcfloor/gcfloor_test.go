package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, scan, floor uint64
		base, want        int
	}{
		{4 * mib, 0, 32 * mib, 100, 700},       // goal 4 + 4 × 7 = 32 MiB
		{4 * mib, 4 * mib, 32 * mib, 100, 350}, // stacks and globals count: 4 + 8 × 3.5
		{2 * mib, 0, 32 * mib, 100, 800},       // at most 800: the runtime's least goal is 4 MiB × GOGC/100
		{16 * mib, 0, 32 * mib, 100, 100},      // half the floor: GOGC=100 reaches it
		{20 * mib, 0, 32 * mib, 100, 100},      // past it: never below base
		{64 * mib, 0, 32 * mib, 100, 100},
		{4 * mib, 0, 32 * mib, 900, 900}, // a higher GOGC of the operator stays
		{0, 0, 32 * mib, 100, 100},       // nothing measured yet
	} {
		if got := Percent(c.live, c.scan, c.floor, c.base); got != c.want {
			t.Errorf("Percent(%d, %d, %d, %d) = %d, want %d", c.live, c.scan, c.floor, c.base, got, c.want)
		}
	}
}

// heapGoal is the runtime's goal for the heap at the next collection.
func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// gogc reads GOGC without changing it.
func gogc() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// waitPercent collects until the tuner has set want, for at most 5 s.
func waitPercent(t *testing.T, tu *Tuner, want func(int) bool) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		p := tu.Percent()
		if want(p) && gogc() == p {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("tuner's GOGC stayed %d (runtime's %d)", p, gogc())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTunerFollowsTheLiveHeap(t *testing.T) {
	before := gogc()
	const floor = 256 << 20
	tu := Start(floor, false)
	// Little is live in a test binary: the floor raises GOGC, and the
	// next collection comes near the floor, not past it.
	p := waitPercent(t, tu, func(p int) bool { return p > 1000 })
	goal := heapGoal()
	t.Logf("GOGC with a small heap: %d; heap goal %d MiB", p, goal>>20)
	if goal > floor*21/20 || goal < floor/2 {
		t.Fatalf("heap goal %d MiB with a floor of %d MiB", goal>>20, floor>>20)
	}

	// 200 MiB live, more than half the floor: back to the base.
	keep := make([]byte, 200<<20)
	for i := range keep {
		keep[i] = byte(i)
	}
	waitPercent(t, tu, func(p int) bool { return p == before })
	runtime.KeepAlive(keep)

	// Freed again: raised again.
	waitPercent(t, tu, func(p int) bool { return p > 100 })

	tu.Stop()
	if got := gogc(); got != before {
		t.Fatalf("GOGC after Stop = %d, want %d", got, before)
	}
	// Stopped: collections change nothing.
	debug.SetGCPercent(150)
	runtime.GC()
	runtime.GC()
	time.Sleep(50 * time.Millisecond)
	if got := gogc(); got != 150 {
		t.Fatalf("a stopped tuner set GOGC to %d", got)
	}
	debug.SetGCPercent(before)
}

// sink keeps allocations from being optimized away.
var sink [][]byte

func TestReleaseWhenIdle(t *testing.T) {
	before := debug.SetGCPercent(-1) // no collection unless the test asks
	defer debug.SetGCPercent(before)
	runtime.GC()
	released := 0
	tu := &Tuner{floor: 32 << 20, base: 100, percent: 100, sample: samples(), release: func() { released++; debug.FreeOSMemory() }}
	t0 := time.Now()
	tu.adjust(t0)

	// Garbage well above ReleaseMin, and no collection.
	for range 64 {
		sink = append(sink, make([]byte, 256<<10))
	}
	sink = nil
	tu.adjust(t0.Add(IdleRelease / 2))
	if released != 0 {
		t.Fatalf("released after %v without a collection, want only after %v", IdleRelease/2, IdleRelease)
	}
	tu.adjust(t0.Add(IdleRelease))
	if released != 1 {
		t.Fatalf("released %d times after %v idle with %d MiB of garbage, want once", released, IdleRelease, 16)
	}
	tu.adjust(t0.Add(IdleRelease + time.Second))
	tu.adjust(t0.Add(2*IdleRelease + time.Second))
	if released != 1 {
		t.Fatalf("released %d times: again with nothing left to give back", released)
	}

	// A busy server collects on its own: never released.
	busy := t0.Add(time.Hour)
	for i := range 5 {
		for range 64 {
			sink = append(sink, make([]byte, 256<<10))
		}
		sink = nil
		runtime.GC()
		tu.adjust(busy.Add(time.Duration(i) * (IdleRelease - time.Second)))
	}
	if released != 1 {
		t.Fatalf("released %d times while collections ran", released)
	}
}
