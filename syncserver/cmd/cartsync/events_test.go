package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/storetest"
	"github.com/cartsync/cartsync/syncserver/webhook"
)

const (
	eventsTestKey    = "events-test-key-0123456789abcdef0123456789"
	eventsTestSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
)

// receiver is the storefront's webhook endpoint: it checks every
// signature and keeps what arrived.
type receiver struct {
	t  *testing.T
	hs *httptest.Server

	mu       sync.Mutex
	byID     map[string][]byte // event id -> body (a redelivery must be the same event)
	times    map[string]int    // event id -> deliveries
	perCart  map[string][]string
	lastData map[string]syncserver.EventData // cart -> data of its last cart.updated
	bad      int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, byID: map[string][]byte{}, times: map[string]int{}, perCart: map[string][]string{}, lastData: map[string]syncserver.EventData{}}
	r.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if err := webhook.Verify([]string{eventsTestSecret}, req.Header, body, time.Now(), 5*time.Minute); err != nil {
			r.mu.Lock()
			r.bad++
			r.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev struct {
			ID     string               `json:"id"`
			Type   string               `json:"type"`
			CartID string               `json:"cart_id"`
			Data   syncserver.EventData `json:"data"`
		}
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID != req.Header.Get("webhook-id") {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		if prev, ok := r.byID[ev.ID]; ok && string(prev) != string(body) {
			r.t.Errorf("event %s delivered twice with different bodies", ev.ID)
		}
		r.byID[ev.ID] = body
		r.times[ev.ID]++
		if r.times[ev.ID] == 1 {
			r.perCart[ev.CartID] = append(r.perCart[ev.CartID], ev.Type)
		}
		if ev.Type == syncserver.EventCartUpdated {
			r.lastData[ev.CartID] = ev.Data
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.hs.Close)
	return r
}

// waitCarts waits, at most within, until every cart's last delivered
// cart.updated is at the version given.
func (r *receiver) waitCarts(want map[string]uint64, within time.Duration) {
	r.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r.mu.Lock()
		missing := 0
		for id, v := range want {
			if r.lastData[id].Version != v {
				missing++
			}
		}
		r.mu.Unlock()
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d of %d carts never got their last cart.updated", missing, len(want))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *receiver) check(created int) {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bad > 0 {
		r.t.Fatalf("%d deliveries with a bad signature", r.bad)
	}
	n := 0
	for id, types := range r.perCart {
		if types[0] != syncserver.EventCartCreated {
			r.t.Errorf("cart %s: first event %s, want cart.created (order per cart)", id, types[0])
		}
		n++
	}
	if n != created {
		r.t.Fatalf("events for %d carts, want %d", n, created)
	}
	for id, k := range r.times {
		if k > 2 {
			r.t.Errorf("event %s delivered %d times", id, k)
		}
	}
}

// TestWebhooksSurviveSIGKILL kills the server right after changes were
// acknowledged: after a restart every one of them is delivered, signed,
// with no event lost (a redelivery carries the same id).
func TestWebhooksSurviveSIGKILL(t *testing.T) {
	bin := buildServer(t)
	for name, args := range map[string][]string{"sqlite": {"-data", t.TempDir()}, "postgres": {"-postgres-url", storetest.SchemaURL(t)}} {
		t.Run(name, func(t *testing.T) {
			rcv := newReceiver(t)
			args := append(args, "-api-keys", eventsTestKey, "-webhook-url", rcv.hs.URL, "-webhook-secrets", eventsTestSecret)
			addr := freeAddr(t)
			base := "http://" + addr
			proc := startProcess(t, bin, addr, args)
			want := map[string]uint64{}
			for i := range 10 {
				tok := newDevice(t, base)
				var last syncserver.OpsResponse
				for seq := range 3 {
					last = postOps(t, base, tok, cart.Op{Client: "c", Seq: uint64(seq + 1), Kind: cart.KindAdd, SKU: fmt.Sprintf("SKU-%d", seq), Quantity: i + 1})
				}
				if last.Results[0].Status != protocol.StatusApplied {
					t.Fatalf("op not applied: %+v", last.Results[0])
				}
				want[last.Cart.ID] = last.Cart.Version
			}
			proc.Process.Signal(syscall.SIGKILL)
			proc.Wait()
			startProcess(t, bin, addr, args)
			// An event the killed process had claimed stays leased,
			// with its cart's later events behind it, until the lease
			// ends: up to webhook.DefaultLease from now.
			rcv.waitCarts(want, webhook.DefaultLease+30*time.Second)
			rcv.check(len(want))
		})
	}
}

// TestTwoInstancesDeliverEachEventOnce runs two instances on one Postgres
// and one Redis with the same webhook endpoint: every event arrives, each
// at most twice (then with the same id), in order per cart.
func TestTwoInstancesDeliverEachEventOnce(t *testing.T) {
	pg := storetest.SchemaURL(t)
	rd := storetest.RedisURL(t)
	prefix := storetest.KeyPrefix(t)
	rcv := newReceiver(t)
	args := []string{"-postgres-url", pg, "-redis-url", rd, "-redis-prefix", prefix,
		"-api-keys", eventsTestKey, "-webhook-url", rcv.hs.URL, "-webhook-secrets", eventsTestSecret}
	a := startMain(t, args...)
	b := startMain(t, args...)
	want := map[string]uint64{}
	for i := range 30 {
		base := a.URL()
		if i%2 == 1 {
			base = b.URL()
		}
		tok := newDevice(t, base)
		var last syncserver.OpsResponse
		for seq := range 2 {
			last = postOps(t, base, tok, cart.Op{Client: "c", Seq: uint64(seq + 1), Kind: cart.KindAdd, SKU: "TEA", Quantity: 1})
		}
		want[last.Cart.ID] = last.Cart.Version
	}
	rcv.waitCarts(want, 60*time.Second)
	rcv.check(len(want))
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	twice := 0
	for _, k := range rcv.times {
		if k == 2 {
			twice++
		}
	}
	t.Logf("%d events, %d of them delivered twice", len(rcv.times), twice)
}
