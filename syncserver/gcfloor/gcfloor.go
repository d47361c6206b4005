// Package gcfloor gives the Go heap a floor: while little memory is live,
// the garbage collector lets the heap grow to the floor before it runs,
// instead of to twice the live memory (GOGC=100).
//
// A sync server under load keeps a few megabytes live and allocates fast
// (every message decoded, every cart encoded), so with GOGC=100 it collects
// twenty times a second. With a floor of 32 MiB it collects a few times a
// second, and the CPU that took is left for the edits. Once the live heap
// passes half the floor, GOGC is 100 again: the memory of a server with
// many connections is not raised.
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Percent is the GOGC that puts the next collection at floor bytes of heap
// when live bytes are live, and never below base.
func Percent(live, floor uint64, base int) int {
	if live == 0 || floor <= live {
		return base
	}
	p := (floor - live) * 100 / live
	if p > 1<<20 {
		p = 1 << 20
	}
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
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	t := &Tuner{floor: floor, base: base, percent: base,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
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
// next collection, adjusts GOGC and makes the next sentinel.
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
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	p := Percent(live, t.floor, t.base)
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
