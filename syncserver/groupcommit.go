package syncserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Group commit: the Mutates that arrive while a store is busy committing
// are committed together, in one transaction and one fsync, instead of one
// transaction each. The policy (grouping by cart, running a batch's
// Mutates of a cart in arrival order on the result of the one before, keeping a
// failed one's changes out) is here, once; a store provides the one
// primitive, BatchCommitter.

// BatchCart is one cart of a batch: its id and the clients whose seqs its
// Mutates asked for.
type BatchCart struct {
	ID      string
	Clients []string
	// AllClients asks for the seq of every client that ever edited the
	// cart as well (a login merge needs them: MergeBatch).
	AllClients bool
}

// BatchLoad is a cart of a batch as the store loaded it under lock, or as
// it expects to find it (see BatchCommitter).
type BatchLoad struct {
	// Rec is the cart with the seqs of every client asked for; a cart
	// that does not exist is a new empty one at version 0 (Exists false).
	Rec *Record
	// Err, if set, is ErrCartExpired or ErrCartGone: the cart's Mutates
	// fail with it and nothing is written for it. Rec is then nil.
	Err error
}

// BatchWrite is what a batch writes for one cart.
type BatchWrite struct {
	ID string
	// Rec is the cart after the batch's Mutates of it: its cart, meta and
	// seqs, and in Appended and Events everything they added, in order.
	Rec *Record
	// Before holds the seqs as loaded; only those that differ are written.
	Before map[string]uint64
}

// A BatchCommitter is a store that can commit many carts' changes in one
// transaction. It is the one write primitive a durable store implements:
// the core builds Store.Mutate (GroupCommitter, or MutateBatch for a batch
// of one) and Store.Merge (MergeBatch) on it, and BatchWrite.Prepare
// decides what each write holds (the seqs that changed, the changes to
// log, the log's trim), so that what a write means is written once: a
// store only locks and loads carts, and issues the statements of each
// WriteSet.
type BatchCommitter interface {
	// CommitBatch, in one transaction, locks carts (given in id order,
	// so that two batches never deadlock) against every other writer,
	// loads them, hands them to decide (loaded[i] is carts[i]), writes
	// the records decide returns and commits durably. If decide returns
	// an error nothing is written and CommitBatch returns it.
	//
	// A store may instead hand decide the carts as it expects to find
	// them (as it last wrote them), and write what decide returns only
	// if, under lock, each cart is still that; otherwise it calls decide
	// again with the carts as locked. decide may thus run twice, and when
	// CommitBatch fails, its results may have come from carts that were
	// not as expected.
	//
	// An error wrapping ErrCommitUnknown means the commit was sent but
	// its outcome is unknown (the connection failed); any other error
	// means nothing was written.
	CommitBatch(ctx context.Context, carts []BatchCart, decide func(loaded []BatchLoad) ([]BatchWrite, error)) error
}

// ErrCommitUnknown is wrapped by a CommitBatch error when the batch may
// have committed: its Mutates are answered with the error, never run again.
var ErrCommitUnknown = errors.New("commit outcome unknown")

// GroupCommitConfig tunes a GroupCommitter.
type GroupCommitConfig struct {
	// Committers is how many batches may be committing at once (default
	// 1). While all are busy, Mutates queue up and become the next batch:
	// the window adapts to the load without a timer, so an unloaded
	// store commits each Mutate at once.
	Committers int
	// MaxBatch bounds the Mutates of one batch (default 256); 1 gives
	// each Mutate a transaction of its own.
	MaxBatch int
	// Timeout bounds one batch's transaction (default 15 s).
	Timeout time.Duration
}

// GroupCommitter implements Store.Mutate by group commit over a
// BatchCommitter. Each Mutate still returns only once its changes are
// durable (or have failed). Within a batch the Mutates of one cart run in
// the order they arrived, each on the record the one before left; batches
// committing at once take a cart in the order they lock it, as separate
// transactions would (a caller that needs an order waits for one Mutate
// before the next, as a connection does).
type GroupCommitter struct {
	store BatchCommitter
	cfg   GroupCommitConfig

	mu    sync.Mutex
	queue []*mutation // guarded by mu
	free  int         // idle committers; guarded by mu

	batches, mutations atomic.Uint64
	waited, committed  prometheus.Histogram // see Collectors
}

type mutation struct {
	queued  time.Time // when Mutate was called
	ctx     context.Context
	cartID  string
	clients []string
	fn      func(*Record) error

	state atomic.Int32 // queued, taken, running or abandoned
	batch *batchRun    // set when taken

	err      error // set before done is closed
	panicked any   // what fn panicked with, re-raised in the caller
	done     chan struct{}
}

// A mutation's state. A caller whose context ends abandons its Mutate
// while that is queued or taken (its batch waits for locks); once fn runs,
// the caller waits for the commit, so that it never reports as failed a
// change that became durable.
const (
	mutQueued int32 = iota
	mutTaken
	mutRunning
	mutAbandoned
)

// batchRun is a batch being committed: its transaction is canceled when
// every one of its callers abandoned it.
type batchRun struct {
	taken  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	live   atomic.Int32
}

// NewGroupCommitter returns a GroupCommitter committing through store. A
// batch that fails as a whole (a statement error, a deadlock the database
// broke) is retried Mutate by Mutate, each in a batch of its own, so that
// one bad change cannot fail the others.
func NewGroupCommitter(store BatchCommitter, cfg GroupCommitConfig) *GroupCommitter {
	if cfg.Committers < 1 {
		cfg.Committers = 1
	}
	if cfg.MaxBatch < 1 {
		cfg.MaxBatch = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	return &GroupCommitter{
		store: store, cfg: cfg, free: cfg.Committers,
		waited: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cartsync_commit_wait_seconds",
			Help:    "Time a change waited for a group-commit transaction to take it, per change: zero unless every committer was busy (changes whose caller gave up while waiting are not counted).",
			Buckets: latencyBuckets,
		}),
		committed: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cartsync_commit_seconds",
			Help:    "Time a group-commit transaction took, from taking its changes to answering them (retries of a failed one included), per transaction.",
			Buckets: latencyBuckets,
		}),
	}
}

// Collectors returns the histograms of where a change's commit time goes:
// cartsync_commit_wait_seconds, how long each change a transaction took
// had waited for it (not those whose caller gave up first), and
// cartsync_commit_seconds, how long each transaction took. Waits that
// grow while transactions stay short mean too few committers (or
// instances); transactions that grow mean the database. They are not
// registered anywhere: see RegisterGroupCommit.
func (g *GroupCommitter) Collectors() []prometheus.Collector {
	return []prometheus.Collector{g.waited, g.committed}
}

// counted counts a transaction that committed n Mutates, for Stats: one
// that failed is not counted, so that the mean batch is the mean of what
// the database took.
func (g *GroupCommitter) counted(n int) {
	g.batches.Add(1)
	g.mutations.Add(uint64(n))
}

// Stats returns how many transactions committed and how many Mutates they
// held.
func (g *GroupCommitter) Stats() (batches, mutations uint64) {
	return g.batches.Load(), g.mutations.Load()
}

// Mutate implements Store.Mutate.
func (g *GroupCommitter) Mutate(ctx context.Context, cartID string, clients []string, fn func(*Record) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mutate cart %s: %w", cartID, err)
	}
	m := &mutation{queued: time.Now(), ctx: ctx, cartID: cartID, clients: clients, fn: fn, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, m)
	start := g.free > 0
	if start {
		g.free--
	}
	g.mu.Unlock()
	if start {
		go g.commitLoop()
	}
	select {
	case <-m.done:
		return m.result()
	case <-ctx.Done():
	}
	g.mu.Lock()
	if m.state.Load() == mutQueued {
		m.state.Store(mutAbandoned)
		g.mu.Unlock()
		return fmt.Errorf("mutate cart %s: %w", cartID, ctx.Err())
	}
	g.mu.Unlock()
	if m.state.CompareAndSwap(mutTaken, mutAbandoned) {
		if m.batch.live.Add(-1) == 0 {
			m.batch.cancel()
		}
		return fmt.Errorf("mutate cart %s: %w", cartID, ctx.Err())
	}
	// fn ran: the outcome is known soon, and the caller must not take a
	// change that became durable for a failure.
	<-m.done
	return m.result()
}

// start moves m to running, unless its caller gave up; a Mutate already
// running (its batch failed, and it is committed again on its own) stays.
func (m *mutation) start() bool {
	return m.state.CompareAndSwap(mutTaken, mutRunning) || m.state.Load() == mutRunning
}

// result is what Mutate returns once m is done.
func (m *mutation) result() error {
	if m.panicked != nil {
		panic(m.panicked)
	}
	return m.err
}

// commitLoop commits batches until the queue is empty, then frees its
// committer.
func (g *GroupCommitter) commitLoop() {
	for {
		g.mu.Lock()
		batch, run := g.take()
		if len(batch) == 0 {
			g.free++
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.commit(batch, run)
	}
}

// take removes the next batch from the queue, skipping Mutates whose
// caller gave up. g.mu must be held.
func (g *GroupCommitter) take() ([]*mutation, *batchRun) {
	var batch []*mutation
	run := &batchRun{taken: time.Now()}
	n := 0
	for _, m := range g.queue {
		if len(batch) == g.cfg.MaxBatch {
			break
		}
		n++
		if m.state.Load() == mutAbandoned {
			continue
		}
		m.batch = run
		m.state.Store(mutTaken)
		g.waited.Observe(run.taken.Sub(m.queued).Seconds())
		batch = append(batch, m)
	}
	g.queue = slices.Delete(g.queue, 0, n)
	if len(g.queue) == 0 {
		g.queue = nil // let a burst's backing array go
	}
	if len(batch) == 0 {
		return nil, nil
	}
	run.ctx, run.cancel = context.WithTimeout(context.Background(), g.cfg.Timeout)
	run.live.Store(int32(len(batch)))
	return batch, run
}

// commit commits one batch and answers its Mutates.
func (g *GroupCommitter) commit(batch []*mutation, run *batchRun) {
	defer run.cancel()
	defer func() {
		g.committed.Observe(time.Since(run.taken).Seconds())
		for _, m := range batch {
			close(m.done)
		}
	}()
	err := g.commitBatch(run.ctx, batch)
	if err == nil {
		g.counted(len(batch))
		return
	}
	if len(batch) > 1 && run.ctx.Err() == nil && !errors.Is(err, ErrCommitUnknown) {
		// Nothing was written: commit them one by one, so that the
		// others go through and the culprit gets its own error. (Not
		// when the batch may have committed: a fn must not run on
		// its own result.)
		for _, m := range batch {
			if m.state.Load() == mutAbandoned {
				continue
			}
			m.err, m.panicked = nil, nil
			one := []*mutation{m}
			if err := g.commitBatch(run.ctx, one); err != nil {
				failed(one, err)
			} else {
				g.counted(1)
			}
		}
		return
	}
	failed(batch, err)
}

// commitBatch commits batch in one transaction. When it returns nil, each
// Mutate's error is its own: nil, or what its fn or its cart's load said.
func (g *GroupCommitter) commitBatch(ctx context.Context, batch []*mutation) error {
	carts, byCart := groupByCart(batch)
	return g.store.CommitBatch(ctx, carts, func(loaded []BatchLoad) ([]BatchWrite, error) {
		var writes []BatchWrite
		for i, c := range carts {
			if w, ok := runCart(c.ID, loaded[i], byCart[c.ID]); ok {
				writes = append(writes, w)
			}
		}
		return writes, nil
	})
}

// failed answers every Mutate of a batch that was not committed with err,
// also those whose fn failed or whose cart was expired: a store may have
// decided the batch on records it had not locked (Store.Mutate), so what
// fn said then is not known to hold.
func failed(batch []*mutation, err error) {
	for _, m := range batch {
		m.err, m.panicked = fmt.Errorf("mutate cart %s: %w", m.cartID, err), nil
	}
}

// groupByCart returns the carts of batch in id order, each with the union
// of its Mutates' clients, and the Mutates of each cart in arrival order.
func groupByCart(batch []*mutation) ([]BatchCart, map[string][]*mutation) {
	byCart := make(map[string][]*mutation, len(batch))
	var carts []BatchCart
	for _, m := range batch {
		if _, ok := byCart[m.cartID]; !ok {
			carts = append(carts, BatchCart{ID: m.cartID})
		}
		byCart[m.cartID] = append(byCart[m.cartID], m)
	}
	for i := range carts {
		ms := byCart[carts[i].ID]
		if len(ms) == 1 {
			carts[i].Clients = ms[0].clients
			continue
		}
		var clients []string
		for _, m := range ms {
			for _, c := range m.clients {
				if !slices.Contains(clients, c) {
					clients = append(clients, c)
				}
			}
		}
		carts[i].Clients = clients
	}
	slices.SortFunc(carts, func(a, b BatchCart) int { return cmp.Compare(a.ID, b.ID) })
	return carts, byCart
}

// runCart runs the Mutates of one cart in order, each on its own copy of
// the record the one before accepted, so that a Mutate that fails leaves
// nothing behind and no caller's record changes after its fn returned. It
// sets the error of each Mutate that failed and returns what to write, if
// any Mutate succeeded.
func runCart(cartID string, l BatchLoad, ms []*mutation) (BatchWrite, bool) {
	if l.Err != nil {
		for _, m := range ms {
			if m.start() {
				m.err, m.panicked = l.Err, nil
			}
		}
		return BatchWrite{}, false
	}
	cur := l.Rec
	out := &Record{Meta: cur.Meta, Cart: cur.Cart, Exists: cur.Exists, Seqs: maps.Clone(cur.Seqs)}
	wrote := false
	for _, m := range ms {
		if !m.start() {
			continue // its caller gave up: fn never runs
		}
		rec := &Record{Cart: out.Cart.Clone(), Meta: out.Meta, Exists: out.Exists, Seqs: make(map[string]uint64, len(m.clients))}
		for _, c := range m.clients {
			rec.Seqs[c] = out.Seqs[c]
		}
		m.panicked = nil // a batch decided again runs fn again
		if err := runFn(m, rec); err != nil {
			m.err = err
			continue
		}
		m.err = nil
		maps.Copy(out.Seqs, rec.Seqs)
		out.Cart, out.Meta, out.Exists = rec.Cart, rec.Meta, true
		out.Appended = append(out.Appended, rec.Appended...)
		out.Events = append(out.Events, rec.Events...)
		wrote = true
	}
	if !wrote {
		return BatchWrite{}, false
	}
	return BatchWrite{ID: cartID, Rec: out, Before: cur.Seqs}, true
}

// runFn runs m's fn on rec. It runs on a committer, not on the caller's
// goroutine: a panic becomes m's error here and is re-raised in the
// caller.
func runFn(m *mutation, rec *Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			m.panicked = p
			err = fmt.Errorf("mutate cart %s: fn panicked: %v", m.cartID, p)
		}
	}()
	return m.fn(rec)
}
