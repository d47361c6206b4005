// Package gcfloor gives the Go heap a floor: while little memory is live,
// the garbage collector lets the heap grow to the floor before it runs,
// instead of to twice the live memory (GOGC=100).
//
// A sync server under load keeps a few megabytes live and allocates fast
// (every message decoded, every cart encoded), so with GOGC=100 it collects
// twenty times a second. With a floor of 32 MiB it collects a few times a
// second, and the CPU that took is left for the edits. As the live heap
// grows the GOGC it needs falls, and from about half the floor on GOGC is
// the base again: the memory of a server with many connections is not
// raised. A GOMEMLIMIT below the floor still wins.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// heapMinimum is the runtime's least heap goal at GOGC=100; it grows with
// GOGC (4 MiB times GOGC/100), so a GOGC above floor/heapMinimum*100 would
// put the goal past the floor however little is live.
const heapMinimum = 4 << 20

// Percent is the GOGC that puts the runtime's next heap goal at floor
// bytes, never below base: the goal is live + (live + scan) × GOGC/100,
// where scan is the stacks and globals the collector scans, and at least
// heapMinimum × GOGC/100.
func Percent(live, scan, floor uint64, base int) int {
	if live == 0 || floor <= live {
		return base
	}
	p := (floor - live) * 100 / (live + scan)
	p = min(p, floor*100/heapMinimum)
	return max(int(p), base)
}

// Tuner sets GOGC after every collection (see Percent).
type Tuner struct {
	floor  uint64
	base   int
	sample []metrics.Sample

	mu      sync.Mutex
	stopped bool
	percent int
}

// Start makes the heap's floor floor bytes, with GOGC never below the
// percent in effect now (100 unless GOGC says otherwise), until Stop. It
// is process-wide: start one.
func Start(floor uint64) *Tuner {
	gogc := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(gogc)
	base := -1 // off, or a runtime without the metric: nothing to tune
	if gogc[0].Value.Kind() == metrics.KindUint64 {
		base = int(gogc[0].Value.Uint64())
	}
	t := &Tuner{floor: floor, base: base, percent: base, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}}
	if base < 0 {
		return t // GOGC=off: nothing to tune
	}
	t.adjust()
	t.arm()
	return t
}

// Stop puts GOGC back to what it was at Start.
func (t *Tuner) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	if t.base >= 0 {
		debug.SetGCPercent(t.base)
	}
}

// Percent is the GOGC the tuner set last.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// sentinel is garbage as soon as it is made: its cleanup runs after the
// next collection (or the one after, if it was made while a collection was
// marking), adjusts GOGC and makes the next sentinel.
type sentinel struct{ _ *byte }

func (t *Tuner) arm() {
	s := new(sentinel)
	runtime.AddCleanup(s, func(t *Tuner) {
		if t.adjust() {
			t.arm()
		}
	}, t)
}

// adjust sets GOGC from the live heap; it reports false once stopped.
func (t *Tuner) adjust() bool {
	metrics.Read(t.sample)
	var v [3]uint64 // live, stack scan, globals scan
	for i, sm := range t.sample {
		if sm.Value.Kind() == metrics.KindUint64 {
			v[i] = sm.Value.Uint64()
		}
	}
	p := Percent(v[0], v[1]+v[2], t.floor, t.base)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
	return true
}
