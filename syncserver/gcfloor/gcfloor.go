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

// Tuner sets GOGC after every collection (see Percent).
type Tuner struct {
	floor  uint64
	base   int
	sample []metrics.Sample // cycles, live, stack scan, globals scan
	cycles uint64           // the collections seen

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

// Start makes the heap's floor floor bytes, with GOGC never below the
// percent in effect now (100 unless GOGC says otherwise), until Stop. It
// is process-wide: start one.
func Start(floor uint64) *Tuner {
	gogc := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(gogc)
	base := -1 // off, or a runtime without the metric: nothing to tune
	if v := gogc[0].Value; v.Kind() == metrics.KindUint64 && v.Uint64() <= math.MaxInt32 {
		base = int(v.Uint64())
	}
	t := &Tuner{floor: floor, base: base, percent: base, stop: make(chan struct{}), done: make(chan struct{}),
		sample: []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/live:bytes"},
			{Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}}
	if base < 0 {
		close(t.done)
		return t // GOGC=off: nothing to tune
	}
	t.adjust()
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
		case <-tick.C:
			t.adjust()
		}
	}
}

// adjust sets GOGC from the live heap after a collection it has not seen.
func (t *Tuner) adjust() {
	metrics.Read(t.sample)
	var v [4]uint64 // cycles, live, stack scan, globals scan
	for i, sm := range t.sample {
		if sm.Value.Kind() == metrics.KindUint64 {
			v[i] = sm.Value.Uint64()
		}
	}
	if v[0] == t.cycles && t.cycles != 0 {
		return // no collection since the last look
	}
	t.cycles = v[0]
	p := Percent(v[1], v[2]+v[3], t.floor, t.base)
	t.mu.Lock()
	defer t.mu.Unlock()
	if p != t.percent {
		debug.SetGCPercent(p)
		t.percent = p
	}
}
