package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/webhook"
)

// The commerce scenario measures the storefront backend's side on a server
// started with -api-keys, -webhook-url (this program's receiver) and
// -webhook-secrets: how fast the catalog takes uploads, and how fast and
// how late cart events reach the webhook receiver while devices edit.

type commerceConfig struct {
	server  string
	apiKey  string
	secret  string
	listen  string // the webhook receiver's address
	items   int    // catalog items to upload, in batches of MaxCatalogBatch
	writers int    // concurrent devices editing
	window  time.Duration
}

// hookStats is what the receiver saw.
type hookStats struct {
	secret  string // the webhooks' signing secret
	mu      sync.Mutex
	seen    map[string]bool
	created []time.Duration // cart.created: change to webhook
	updated []time.Duration // cart.updated: change to webhook (includes the 1 s coalescing wait)
	bad     atomic.Int64
	total   atomic.Int64
}

func runCommerce(ctx context.Context, c commerceConfig) error {
	st := &hookStats{seen: map[string]bool{}, secret: c.secret}
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return fmt.Errorf("webhook receiver: %w", err)
	}
	hs := &http.Server{Handler: st}
	go hs.Serve(ln)
	defer hs.Close()
	if err := uploadCatalog(ctx, c); err != nil {
		return err
	}
	editCarts(ctx, c, st)
	createBurst(ctx, c, st)
	return nil
}

// ServeHTTP receives a webhook: it checks its signature and counts it,
// with its lag when first seen.
func (st *hookStats) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	now := time.Now()
	if webhook.Verify([]string{st.secret}, r.Header, body, now, 5*time.Minute) != nil {
		st.bad.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var ev struct {
		ID        string    `json:"id"`
		Type      string    `json:"type"`
		Timestamp time.Time `json:"timestamp"`
	}
	json.Unmarshal(body, &ev)
	st.total.Add(1)
	st.mu.Lock()
	if !st.seen[ev.ID] {
		st.seen[ev.ID] = true
		switch ev.Type {
		case syncserver.EventCartCreated:
			st.created = append(st.created, now.Sub(ev.Timestamp))
		case syncserver.EventCartUpdated:
			st.updated = append(st.updated, now.Sub(ev.Timestamp))
		}
	}
	st.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// uploadCatalog uploads c.items catalog items in the largest batches.
func uploadCatalog(ctx context.Context, c commerceConfig) error {
	start := time.Now()
	for done := 0; done < c.items; {
		n := min(syncserver.MaxCatalogBatch, c.items-done)
		items := make([]cart.Item, n)
		for i := range items {
			items[i] = cart.Item{SKU: fmt.Sprintf("BENCH-%07d", done+i), Name: fmt.Sprintf("Item %d", done+i),
				Price: int64(100 + (done+i)%5000), Currency: "EUR", Sellable: true, Stock: ptr(1000)}
		}
		if err := backendCall(ctx, c, "PUT", "/v1/backend/catalog/items", syncserver.CatalogUpsert{Items: items}); err != nil {
			return err
		}
		done += n
	}
	upload := time.Since(start)
	fmt.Printf("catalog: %d items in batches of %d in %.2f s: %.0f items/s\n", c.items, syncserver.MaxCatalogBatch, upload.Seconds(), float64(c.items)/upload.Seconds())
	return nil
}

// editCarts has c.writers devices edit carts of catalog items for c.window,
// each edit a cart event, and reports the webhooks that followed.
func editCarts(ctx context.Context, c commerceConfig, st *hookStats) {
	var acked atomic.Int64
	wctx, cancel := context.WithTimeout(ctx, c.window)
	defer cancel()
	var wg sync.WaitGroup
	begin := time.Now()
	for w := range c.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dev syncserver.DeviceResponse
			if err := httpJSON(wctx, "POST", c.server+"/v1/devices", "", nil, &dev); err != nil {
				return
			}
			for seq := uint64(1); wctx.Err() == nil; seq++ {
				op := cart.Op{Client: "bench", Seq: seq, Kind: cart.KindAdd, SKU: fmt.Sprintf("BENCH-%07d", (w*31+int(seq))%c.items), Quantity: 1}
				if seq%20 == 0 {
					op = cart.Op{Client: "bench", Seq: seq, Kind: cart.KindClear}
				}
				var out syncserver.OpsResponse
				if httpJSON(wctx, "POST", c.server+"/v1/cart/ops", dev.DeviceToken, syncserver.OpsRequest{Ops: []cart.Op{op}}, &out) == nil {
					acked.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	edits := time.Since(begin)
	// Let the deliveries catch up.
	time.Sleep(5 * time.Second)
	st.mu.Lock()
	fmt.Printf("edits: %d acknowledged by %d devices in %.1f s (%.0f/s), each a cart.updated event (coalesced per cart within 1 s)\n",
		acked.Load(), c.writers, edits.Seconds(), float64(acked.Load())/edits.Seconds())
	fmt.Printf("webhooks: %d delivered (%d distinct events, %d with a bad signature) in %.1f s: %.0f/s\n",
		st.total.Load(), len(st.seen), st.bad.Load(), edits.Seconds()+5, float64(len(st.seen))/(edits.Seconds()+5))
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	fmt.Printf("lag from change to webhook, cart.created: p50 %s, p99 %s (n=%d)\n", ms(pct(st.created, 0.5)), ms(pct(st.created, 0.99)), len(st.created))
	fmt.Printf("lag from change to webhook, cart.updated: p50 %s, p99 %s (n=%d; includes the 1 s coalescing wait)\n", ms(pct(st.updated, 0.5)), ms(pct(st.updated, 0.99)), len(st.updated))
	st.mu.Unlock()
}

// createBurst makes new carts in a burst: each a cart.created event that
// nothing coalesces, to see the delivery rate itself.
func createBurst(ctx context.Context, c commerceConfig, st *hookStats) {
	var wg sync.WaitGroup
	st.mu.Lock()
	createdBefore := len(st.created)
	st.mu.Unlock()
	const burst = 3000
	burstStart := time.Now()
	var next atomic.Int64
	for range c.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= burst {
				var dev syncserver.DeviceResponse
				if httpJSON(ctx, "POST", c.server+"/v1/devices", "", nil, &dev) != nil {
					continue
				}
				op := cart.Op{Client: "bench", Seq: 1, Kind: cart.KindAdd, SKU: "BENCH-0000001", Quantity: 1}
				httpJSON(ctx, "POST", c.server+"/v1/cart/ops", dev.DeviceToken, syncserver.OpsRequest{Ops: []cart.Op{op}}, nil)
			}
		}()
	}
	wg.Wait()
	made := time.Since(burstStart)
	var drained time.Duration
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st.mu.Lock()
		n := len(st.created) - createdBefore
		st.mu.Unlock()
		if n >= burst {
			drained = time.Since(burstStart)
			break
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	burstLags := st.created[createdBefore:]
	if drained > 0 {
		fmt.Printf("burst: %d new carts made in %.2f s, all %d cart.created webhooks delivered %.2f s after the first was made: %.0f deliveries/s; lag p50 %.0f ms, p99 %.0f ms\n",
			burst, made.Seconds(), burst, drained.Seconds(), burst/drained.Seconds(),
			float64(pct(burstLags, 0.5))/float64(time.Millisecond), float64(pct(burstLags, 0.99))/float64(time.Millisecond))
	} else {
		fmt.Printf("burst: only %d of %d cart.created webhooks arrived within 2 minutes\n", len(burstLags), burst)
	}
}

func ptr[T any](v T) *T { return &v }

func backendCall(ctx context.Context, c commerceConfig, method, path string, body any) error {
	return httpJSON(ctx, method, c.server+path, c.apiKey, body, nil)
}

// httpJSON makes a JSON request with a bearer token and decodes a 2xx
// answer into out.
func httpJSON(ctx context.Context, method, url, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s %s", method, url, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
