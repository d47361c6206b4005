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
//
// The tuner also gives memory back once the server is idle. After a storm
// of connections the heap holds what their handshakes left, and the
// runtime keeps it mapped up to the next heap goal, twice what is live, for
// as long as nothing allocates: an idle server never reaches that
// collection. When no collection has run for IdleRelease and the heap
// holds more than ReleaseMin above what is live, the tuner collects and
// returns the free memory to the system (debug.FreeOSMemory), once per
// idle spell. A busy server collects far more often and is never touched.
package gcfloor

import (
	"math"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
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

// IdleRelease is how long without a collection makes the server idle,
// and ReleaseMin the heap above the live memory worth giving back then.
const (
	IdleRelease = 10 * time.Second
	ReleaseMin  = 4 << 20
)

// Tuner sets GOGC after every collection (see Percent), and gives memory
// back when the server is idle.
type Tuner struct {
	floor     uint64
	base      int
	sample    []metrics.Sample // see samples
	cycles    uint64           // the collections seen
	lastCycle time.Time        // when the tuner saw the last one
	release   func()           // gives memory back (debug.FreeOSMemory); nil: never

	mu      sync.Mutex
	percent int

	stop chan struct{}
	done chan struct{}
}

// pollEvery is how often the tuner looks for a finished collection. GOGC
// set for a small heap stays in force until then, however much the heap
// grew meanwhile (a storm of connections): the poll bounds the overshoot
// to what is allocated in this time.
const pollEvery = 20 * time.Millisecond

// Start makes the heap's floor floor bytes (0 for none), with GOGC never
// below the percent in effect now (100 unless GOGC says otherwise), and
// gives memory back when idle if idleRelease, until Stop. It is
// process-wide: start one.
func Start(floor uint64, idleRelease bool) *Tuner {
	gogc := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(gogc)
	base := -1 // off, or a runtime without the metric: nothing to tune
	if v := gogc[0].Value; v.Kind() == metrics.KindUint64 && v.Uint64() <= math.MaxInt32 {
		base = int(v.Uint64())
	}
	t := &Tuner{floor: floor, base: base, percent: base, stop: make(chan struct{}), done: make(chan struct{}),
		sample: samples()}
	if idleRelease {
		t.release = debug.FreeOSMemory
	}
	if base < 0 {
		close(t.done)
		return t // GOGC=off: nothing to tune
	}
	t.adjust(time.Now())
	go t.run()
	return t
}

// Stop ends the tuner and puts GOGC back to what it was at Start.
func (t *Tuner) Stop() {
	select {
	case <-t.stop:
		return
	default:
	}
	close(t.stop)
	<-t.done
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

func (t *Tuner) run() {
	defer close(t.done)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			t.adjust(now)
		}
	}
}

// samples are the metrics adjust reads, in the order of its values.
func samples() []metrics.Sample {
	return []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"}, // live and dead objects
		{Name: "/memory/classes/heap/unused:bytes"},  // room in spans in use
		{Name: "/memory/classes/heap/free:bytes"},    // free pages not yet returned
	}
}

// adjust sets GOGC from the live heap after a collection it has not seen,
// and gives memory back when none has run for IdleRelease.
func (t *Tuner) adjust(now time.Time) {
	metrics.Read(t.sample)
	var v [7]uint64 // in the order of samples
	for i, sm := range t.sample {
		if sm.Value.Kind() == metrics.KindUint64 {
			v[i] = sm.Value.Uint64()
		}
	}
	cycles, live, scan := v[0], v[1], v[2]+v[3]
	if cycles == t.cycles && t.cycles != 0 {
		// No collection since the last look.
		if held := v[4] + v[5] + v[6]; t.release != nil && now.Sub(t.lastCycle) >= IdleRelease && held > live+ReleaseMin {
			t.release()
			t.lastCycle = now // once per idle spell, even if little came back
		}
		return
	}
	t.cycles, t.lastCycle = cycles, now
	p := Percent(live, scan, t.floor, t.base)
	t.mu.Lock()
	defer t.mu.Unlock()
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}
