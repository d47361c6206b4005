package main

// The peer workload (-scenario peer): the comparison other cart systems
// are measured with. N shoppers, each with a cart of its own, loop add ->
// set quantity 3 -> remove, every op awaited until acknowledged: over the
// websocket with the client engine, then over HTTP (POST /v1/cart/ops),
// one after the other against the same server.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
)

type peerConfig struct {
	servers          []string // shopper i uses servers[i % len(servers)]
	shoppers         int
	duration, warmup time.Duration
}

// peerResult is one transport's run: every acknowledged op's latency in
// the measured window.
type peerResult struct {
	name      string
	lat       []time.Duration
	window    time.Duration
	errors    int
	serverCPU float64 // seconds over the window
}

// sumCounters adds up serverCounters over servers.
func sumCounters(ctx context.Context, servers []string) map[string]float64 {
	sum := map[string]float64{}
	for _, s := range servers {
		for k, v := range serverCounters(ctx, s) {
			sum[k] += v
		}
	}
	return sum
}

func (r peerResult) print(shoppers int) {
	fmt.Printf("peer workload over %s, %d shoppers (add -> set quantity 3 -> remove, each op acknowledged before the next): %.0f ops/s; latency p50 %s, p95 %s, p99 %s (%d ops)\n",
		r.name, shoppers, float64(len(r.lat))/r.window.Seconds(), ms(pct(r.lat, 0.50)), ms(pct(r.lat, 0.95)), ms(pct(r.lat, 0.99)), len(r.lat))
	if r.serverCPU > 0 && len(r.lat) > 0 {
		fmt.Printf("peer workload over %s: server CPU %.2f cores, %.3f ms per acknowledged op\n", r.name, r.serverCPU/r.window.Seconds(), 1000*r.serverCPU/float64(len(r.lat)))
	}
	if r.errors > 0 {
		fmt.Printf("peer workload over %s: %d errors\n", r.name, r.errors)
	}
}

func runPeer(ctx context.Context, c peerConfig) error {
	// Each transport gets carts of its own: an op of the websocket run
	// still in flight when it ends must not meet the HTTP run's.
	devices := func() ([]string, error) {
		tokens := make([]string, c.shoppers)
		for i := range tokens {
			tok, err := newDevice(ctx, c.servers[i%len(c.servers)])
			if err != nil {
				return nil, err
			}
			tokens[i] = tok
		}
		return tokens, nil
	}
	tokens, err := devices()
	if err != nil {
		return err
	}
	ws, err := peerWebsocket(ctx, c, tokens)
	if err != nil {
		return err
	}
	ws.print(c.shoppers)
	if tokens, err = devices(); err != nil {
		return err
	}
	peerHTTP(ctx, c, tokens).print(c.shoppers)
	return nil
}

// measure runs loop for every shopper through the warm-up and the window
// and collects the latencies loop reports during the window.
func measure(ctx context.Context, c peerConfig, name string, loop func(ctx context.Context, i int, op func(time.Duration), fail func(error))) peerResult {
	ctx, cancel := context.WithCancel(ctx)
	var (
		mu     sync.Mutex
		on     bool
		lat    []time.Duration
		errs   int
		first  error
		wg     sync.WaitGroup
		window time.Duration
	)
	for i := range c.shoppers {
		wg.Go(func() {
			loop(ctx, i, func(d time.Duration) {
				mu.Lock()
				if on {
					lat = append(lat, d)
				}
				mu.Unlock()
			}, func(err error) {
				mu.Lock()
				if ctx.Err() == nil {
					errs++
					if first == nil {
						first = err
					}
				}
				mu.Unlock()
			})
		})
	}
	time.Sleep(c.warmup)
	before := sumCounters(ctx, c.servers)
	mu.Lock()
	on = true
	mu.Unlock()
	start := time.Now()
	time.Sleep(c.duration)
	mu.Lock()
	on = false
	window = time.Since(start)
	mu.Unlock()
	after := sumCounters(ctx, c.servers)
	cancel()
	wg.Wait()
	if first != nil {
		fmt.Fprintf(os.Stderr, "bench: peer over %s: first error: %v\n", name, first)
	}
	return peerResult{name: name, lat: lat, window: window, errors: errs, serverCPU: after[metricCPU] - before[metricCPU]}
}

// peerWebsocket runs the workload with one client engine per shopper.
func peerWebsocket(ctx context.Context, c peerConfig, tokens []string) (peerResult, error) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	engines := make([]*syncclient.Engine, len(tokens))
	var running sync.WaitGroup
	defer running.Wait() // after stop, below
	ectx, stop := context.WithCancel(ctx)
	defer stop()
	for i, tok := range tokens {
		st := syncclient.NewMemStorage()
		if _, err := st.SwapDeviceToken(ctx, "", tok); err != nil {
			return peerResult{}, err
		}
		wsURL := "ws" + strings.TrimPrefix(c.servers[i%len(c.servers)], "http") + "/v1/sync"
		e, err := syncclient.New(syncclient.Config{Storage: st, Dial: syncclient.WebsocketDialer(wsURL), Logger: logger})
		if err != nil {
			return peerResult{}, err
		}
		engines[i] = e
		running.Go(func() { e.Run(ectx) })
	}
	details := &cart.Details{Name: "Peer workload item", Price: 1299, Currency: "EUR"}
	res := measure(ctx, c, "websocket", func(ctx context.Context, i int, op func(time.Duration), fail func(error)) {
		e := engines[i]
		steps := []func() error{
			func() error { return e.Add(ctx, "PEER-1", nil, 1, details) },
			func() error { return e.SetQuantity(ctx, "PEER-1", nil, 3) },
			func() error { return e.Remove(ctx, "PEER-1", nil) },
		}
		for n := 0; ctx.Err() == nil; n++ {
			start := time.Now()
			if err := steps[n%3](); err != nil {
				fail(err)
				return
			}
			if err := e.Flush(ctx); err != nil {
				fail(err)
				return
			}
			op(time.Since(start))
		}
	})
	return res, nil
}

// peerHTTP runs the workload over POST /v1/cart/ops, one keep-alive
// connection per shopper.
func peerHTTP(ctx context.Context, c peerConfig, tokens []string) peerResult {
	return measure(ctx, c, "HTTP", func(ctx context.Context, i int, op func(time.Duration), fail func(error)) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer client.CloseIdleConnections()
		id := fmt.Sprintf("peer-http-%d", i)
		for seq := uint64(1); ctx.Err() == nil; seq++ {
			o := cart.Op{Client: id, Seq: seq, SKU: "PEER-1"}
			switch seq % 3 {
			case 1:
				o.Kind, o.Quantity, o.Details = cart.KindAdd, 1, &cart.Details{Name: "Peer workload item", Price: 1299, Currency: "EUR"}
			case 2:
				o.Kind, o.Quantity = cart.KindSet, 3
			default:
				o.Kind = cart.KindRemove
			}
			start := time.Now()
			if err := postOp(ctx, client, c.servers[i%len(c.servers)], tokens[i], o); err != nil {
				fail(err)
				return
			}
			op(time.Since(start))
		}
	})
}

func postOp(ctx context.Context, client *http.Client, server, token string, o cart.Op) error {
	body, err := json.Marshal(map[string]any{"ops": []cart.Op{o}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", server+"/v1/cart/ops", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var out struct {
		Results []struct {
			Status string `json:"status"`
		} `json:"results"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Results) != 1 || out.Results[0].Status != "applied" {
		return fmt.Errorf("POST /v1/cart/ops: %d %.200s", resp.StatusCode, b)
	}
	return nil
}
