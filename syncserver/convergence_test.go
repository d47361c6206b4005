package syncserver_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// testUsers accepts "user:<id>" as a user token.
type testUsers struct{}

func (testUsers) VerifyUser(_ context.Context, tok string) (string, error) {
	if u, ok := strings.CutPrefix(tok, "user:"); ok && u != "" {
		return u, nil
	}
	return "", protocol.Errorf(protocol.ErrUnauthorized, "bad user token")
}

// network is one device's link to the server: it can go offline, and it
// duplicates, holds back (reorders) and drops messages at random.
type network struct {
	url     string
	offline atomic.Bool
	mu      sync.Mutex
	rnd     *rand.Rand
	conns   map[*faultyConn]bool
}

func (n *network) chance(p float64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rnd.Float64() < p
}

func (n *network) intn(k int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rnd.IntN(k)
}

func (n *network) dial(ctx context.Context) (syncclient.Conn, error) {
	if n.offline.Load() {
		return nil, errors.New("network offline")
	}
	c, err := syncclient.WebsocketDialer(n.url)(ctx)
	if err != nil {
		return nil, err
	}
	fc := &faultyConn{Conn: c, net: n}
	n.mu.Lock()
	n.conns[fc] = true
	n.mu.Unlock()
	return fc, nil
}

// setOffline cuts every open connection of the device.
func (n *network) setOffline(off bool) {
	n.offline.Store(off)
	if !off {
		return
	}
	n.mu.Lock()
	conns := n.conns
	n.conns = map[*faultyConn]bool{}
	n.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

type faultyConn struct {
	syncclient.Conn
	net  *network
	mu   sync.Mutex
	held [][]byte
}

var debugConv = os.Getenv("CONVERGENCE_DEBUG") != ""

func (c *faultyConn) Read(ctx context.Context) ([]byte, error) {
	b, err := c.Conn.Read(ctx)
	if debugConv {
		fmt.Fprintf(os.Stderr, "%s %p <- %.200s %v\n", time.Now().Format("05.000"), c, b, err)
	}
	return b, err
}

// Write delivers client messages duplicated, late (after a later message)
// or not at all, at random.
func (c *faultyConn) Write(ctx context.Context, msg []byte) error {
	if c.net.offline.Load() {
		return errors.New("network offline")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if debugConv {
		fmt.Fprintf(os.Stderr, "%s %p -> %.200s\n", time.Now().Format("05.000"), c, msg)
	}
	switch {
	case c.net.chance(0.03):
		c.Conn.Close() // the link drops; held messages are lost with it
		return errors.New("connection dropped")
	case c.net.chance(0.10):
		// Delivered late: after the next message, or after a short delay,
		// as TCP never loses a message on a live connection.
		c.held = append(c.held, msg)
		time.AfterFunc(time.Duration(1+c.net.intn(30))*time.Millisecond, func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.flush(context.Background())
		})
		return nil
	}
	if err := c.Conn.Write(ctx, msg); err != nil {
		return err
	}
	if c.net.chance(0.10) {
		if err := c.Conn.Write(ctx, msg); err != nil { // duplicated
			return err
		}
	}
	return c.flush(ctx)
}

// flush writes the held messages; c.mu is held.
func (c *faultyConn) flush(ctx context.Context) error {
	held := c.held
	c.held = nil
	for _, h := range held {
		if err := c.Conn.Write(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

// recordingStorage remembers which client ids a device used.
type recordingStorage struct {
	syncclient.Storage
	device  string
	clients *sync.Map // client id -> device
	seqs    *sync.Map // client id -> last seq enqueued
}

func (r recordingStorage) Enqueue(ctx context.Context, client string, build func(uint64) cart.Op) (cart.Op, error) {
	op, err := r.Storage.Enqueue(ctx, client, build)
	if err == nil {
		r.clients.Store(client, r.device)
		r.seqs.Store(client, op.Seq)
	}
	return op, err
}

// TestConvergence is the property test of the sync core: devices edit one
// cart through the real server while they go offline, and their messages
// are duplicated, delayed, reordered and dropped; one tab closes with edits
// pending and its sibling sends them. In the end every device shows the
// server's cart, every edit took effect exactly once, and the server's cart
// equals a reference model of the rules applied to the log in server order.
func TestConvergence(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { convergence(t, seed) })
	}
}

func convergence(t testing.TB, seed uint64) {
	lim := cart.DefaultLimits
	lim.MaxQuantity = 50
	lim.MaxContribs = 10_000 // the model keeps full history
	store := memstore.New()
	srv, err := syncserver.New(context.Background(), syncserver.Config{Store: store, Users: testUsers{}, Limits: lim, Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	wsURL := "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/sync"

	rnd := rand.New(rand.NewPCG(seed, 99))
	clients, seqs := &sync.Map{}, &sync.Map{}
	const devices = 3
	type tab struct {
		e      *syncclient.Engine
		net    *network
		cancel context.CancelFunc
		done   chan struct{}
	}
	var tabs []*tab
	ctx, cancelAll := context.WithCancel(context.Background())
	defer cancelAll()
	startTab := func(dev int, st syncclient.Storage, n *network) *tab {
		e, err := syncclient.New(syncclient.Config{
			Storage: st, Dial: n.dial, Limits: lim,
			UserToken:   func() string { return "user:shopper" },
			BackoffBase: 5 * time.Millisecond, BackoffCap: 40 * time.Millisecond,
			Heartbeat: 200 * time.Millisecond, Resync: 300 * time.Millisecond,
			Rand:   func() float64 { return 0.5 },
			Logger: testLogger(dev),
		})
		if err != nil {
			t.Fatal(err)
		}
		tctx, cancel := context.WithCancel(ctx)
		tb := &tab{e: e, net: n, cancel: cancel, done: make(chan struct{})}
		go func() { defer close(tb.done); e.Run(tctx) }()
		return tb
	}
	nets := make([]*network, devices)
	for d := range devices {
		nets[d] = &network{url: wsURL, rnd: rand.New(rand.NewPCG(seed, uint64(d))), conns: map[*faultyConn]bool{}}
		st := recordingStorage{Storage: syncclient.NewMemStorage(), device: fmt.Sprint("dev", d), clients: clients, seqs: seqs}
		tabs = append(tabs, startTab(d, st, nets[d]))
		if d == 0 { // a second tab on device 0, sharing its storage
			tabs = append(tabs, startTab(d, st, nets[d]))
		}
	}

	skus := []string{"mug", "tea", "jam", "cup"}
	closedTab := -1
	for i := range 160 {
		ti := rnd.IntN(len(tabs))
		if ti == closedTab {
			continue
		}
		e := tabs[ti].e
		sku := skus[rnd.IntN(len(skus))]
		opts := map[string]string(nil)
		if rnd.IntN(4) == 0 {
			opts = map[string]string{"size": "L"}
		}
		var err error
		switch k := rnd.IntN(20); {
		case k < 9:
			err = e.Add(ctx, sku, opts, 1+rnd.IntN(3), &cart.Details{Name: sku, Price: 250, Currency: "EUR"})
		case k < 13:
			err = e.SetQuantity(ctx, sku, opts, rnd.IntN(6))
		case k < 18:
			err = e.Remove(ctx, sku, opts)
		default:
			err = e.Clear(ctx)
		}
		if err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
		if rnd.IntN(12) == 0 {
			n := nets[rnd.IntN(devices)]
			n.setOffline(!n.offline.Load())
		}
		if i == 100 { // tab 1 (device 0) closes with whatever it has pending
			tabs[1].net.setOffline(true)
			tabs[1].cancel()
			<-tabs[1].done
			closedTab = 1
		}
		if rnd.IntN(6) == 0 {
			time.Sleep(time.Duration(rnd.IntN(15)) * time.Millisecond)
		}
	}
	for _, n := range nets {
		n.setOffline(false)
	}

	// Everything pending drains and every open tab shows the server's cart.
	cartID := syncserver.UserCartID("shopper")
	deadline := time.Now().Add(20 * time.Second)
	var server *cart.Cart
	for {
		rec, err := store.Load(ctx, cartID, nil)
		if err != nil {
			t.Fatal(err)
		}
		server = rec.Cart.Public()
		converged := true
		for i, tb := range tabs {
			if i == closedTab {
				continue
			}
			s := tb.e.Snapshot()
			if s.Pending != 0 || s.Confirmed != server.Version || summarize(s.Cart) != summarize(server) {
				converged = false
			}
		}
		if converged {
			break
		}
		if time.Now().After(deadline) {
			for i, tb := range tabs {
				s := tb.e.Snapshot()
				t.Logf("tab %d: status %v pending %d confirmed %d cart %s", i, s.Status, s.Pending, s.Confirmed, summarize(s.Cart))
			}
			t.Fatalf("no convergence; server v%d %s", server.Version, summarize(server))
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Every edit of every client id was processed, none lost.
	var ids []string
	clients.Range(func(k, _ any) bool { ids = append(ids, k.(string)); return true })
	rec, err := store.Load(ctx, cartID, ids)
	if err != nil {
		t.Fatal(err)
	}
	seqs.Range(func(k, v any) bool {
		if got := rec.Seqs[k.(string)]; got != v.(uint64) {
			t.Errorf("client %s: server processed up to seq %d, enqueued %d", k, got, v)
		}
		return true
	})

	// Each applied op appears once in the log, and the log replayed through
	// the reference model gives the server's cart.
	log, err := store.Changes(ctx, cartID, 0, syncserver.LogKeep)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(log)) != server.Version {
		t.Fatalf("log has %d changes for version %d", len(log), server.Version)
	}
	seen := map[protocol.OpID]bool{}
	m := newModel(lim)
	for _, ch := range log {
		id := protocol.OpID{Client: ch.Op.Client, Seq: ch.Op.Seq}
		if seen[id] {
			t.Fatalf("op %v applied twice", id)
		}
		seen[id] = true
		dev, _ := clients.Load(ch.Op.Client)
		m.apply(ch.Op, dev.(string), ch.Version)
	}
	if got, want := summarize(server), m.summary(); got != want {
		t.Fatalf("server cart differs from the model:\nserver %s\nmodel  %s", got, want)
	}
	t.Logf("seed %d: %d versions, %d lines, server %s", seed, server.Version, len(server.Lines), summarize(server))
}

func summarize(c *cart.Cart) string {
	var parts []string
	for _, l := range c.Lines {
		parts = append(parts, fmt.Sprintf("%s=%d", l.Key, l.Quantity))
	}
	sort.Strings(parts)
	return "[" + strings.Join(parts, " ") + "]"
}

// model is the reference: the rules of docs/semantics.md written plainly,
// with the full history of each line.
type model struct {
	lim   cart.Limits
	lines map[string][]event // live contributions per line; absent = no line
}

type event struct {
	version uint64
	device  string
	set     bool
	n       int
}

func newModel(lim cart.Limits) *model { return &model{lim: lim, lines: map[string][]event{}} }

func (m *model) qty(evs []event) int {
	q := 0
	for _, e := range evs {
		if e.set {
			q = e.n
		} else {
			q += e.n
		}
		q = min(q, m.lim.MaxQuantity)
	}
	return q
}

// removeSeen keeps the contributions the remover had not seen.
func (m *model) removeSeen(key string, base uint64, dev string) {
	var keep []event
	for _, e := range m.lines[key] {
		if e.version > base && e.device != dev {
			keep = append(keep, e)
		}
	}
	if m.qty(keep) <= 0 {
		delete(m.lines, key)
		return
	}
	m.lines[key] = keep
}

func (m *model) apply(op cart.Op, dev string, version uint64) {
	key := op.Key()
	switch op.Kind {
	case cart.KindAdd:
		m.lines[key] = append(m.lines[key], event{version, dev, false, op.Quantity})
	case cart.KindSet:
		if op.Quantity == 0 {
			m.removeSeen(key, op.Base, dev)
		} else {
			m.lines[key] = append(m.lines[key], event{version, dev, true, op.Quantity})
		}
	case cart.KindRemove:
		if _, ok := m.lines[key]; ok {
			m.removeSeen(key, op.Base, dev)
		}
	case cart.KindClear:
		for k := range m.lines {
			m.removeSeen(k, op.Base, dev)
		}
	}
}

func (m *model) summary() string {
	var parts []string
	for k, evs := range m.lines {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m.qty(evs)))
	}
	sort.Strings(parts)
	return "[" + strings.Join(parts, " ") + "]"
}

func testLogger(dev int) *slog.Logger {
	if os.Getenv("CONVERGENCE_DEBUG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("dev", dev)
}
