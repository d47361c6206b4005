package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
)

// TestGroupCommitSurvivesKillsMidBatch has many devices edit at once, so
// that their edits are committed in shared batches, and kills the server
// with SIGKILL again and again while batches are committing. Each device
// sends its ops one at a time and resends one that got no answer, as a
// client does. At the end every acknowledged op is in its cart's log
// exactly once, in order, with no gap, and an op is only ever reported
// applied (or as a duplicate) once it was stored.
func TestGroupCommitSurvivesKillsMidBatch(t *testing.T) {
	bin := buildServer(t)
	for name, args := range serverBackends(t) {
		t.Run(name, func(t *testing.T) {
			args := append(args, "-rate-per-ip", "-1", "-devices-per-ip", "-1", "-edits-per-ip", "-1", "-max-conns-per-ip", "-1")
			addr := freeAddr(t)
			base := "http://" + addr
			proc := startProcess(t, bin, addr, args)

			// Two devices on each cart, so that batches hold two
			// Mutates of one cart.
			const devices, opsEach, kills = 24, 150, 6
			toks := make([]string, devices)
			for d := range toks {
				if d%2 == 0 {
					toks[d] = newDevice(t, base)
				} else {
					toks[d] = toks[d-1]
				}
			}
			var acked [devices]atomic.Uint64 // every op up to it acknowledged
			var total, retried atomic.Int64
			errs := make(chan error, devices)
			var wg sync.WaitGroup
			for d := range devices {
				wg.Go(func() {
					client := &http.Client{Timeout: 10 * time.Second}
					sku := fmt.Sprintf("SKU-%02d", d)
					deadline := time.Now().Add(2 * time.Minute)
					for seq := uint64(1); seq <= opsEach; seq++ {
						op := cart.Op{Client: fmt.Sprintf("dev-%02d", d), Seq: seq, Kind: cart.KindAdd, SKU: sku, Quantity: 1}
						for attempt := 1; ; attempt++ {
							if time.Now().After(deadline) {
								errs <- fmt.Errorf("device %d: op %d not acknowledged in 2 minutes", d, seq)
								return
							}
							res, err := tryOps(client, base, toks[d], op)
							if err != nil {
								retried.Add(1)
								time.Sleep(20 * time.Millisecond) // the server is down: retry
								continue
							}
							// A duplicate is right only for an op sent
							// before, whose answer was lost.
							if st := res.Results[0].Status; st != protocol.StatusApplied && (st != protocol.StatusDuplicate || attempt == 1) {
								errs <- fmt.Errorf("device %d op %d, attempt %d: status %q", d, seq, attempt, st)
								return
							}
							if q := quantity(res.Cart, sku); q != int(seq) {
								errs <- fmt.Errorf("device %d op %d: acknowledged with quantity %d, want %d", d, seq, q, seq)
								return
							}
							break
						}
						acked[d].Store(seq)
						total.Add(1)
					}
				})
			}
			// Kill while edits flow: each time after some more were
			// acknowledged, at a random moment.
			finished := make(chan struct{})
			go func() { wg.Wait(); close(finished) }()
			killed := 0
			for range kills {
				waitAcked(&total, total.Load()+300, finished)
				if total.Load() == devices*opsEach {
					break
				}
				killed++
				time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
				proc.Process.Signal(syscall.SIGKILL)
				proc.Wait()
				proc = startProcess(t, bin, addr, args)
			}
			<-finished
			close(errs)
			if killed < 2 || retried.Load() == 0 {
				t.Errorf("%d kills, %d requests without an answer: the kills did not land among the edits", killed, retried.Load())
			}
			t.Logf("%d ops acknowledged across %d kills; %d requests got no answer and were sent again", total.Load(), killed, retried.Load())
			for err := range errs {
				t.Error(err)
			}
			for d := 0; d < devices; d += 2 {
				checkLog(t, base, toks[d], map[string]uint64{
					fmt.Sprintf("dev-%02d", d): acked[d].Load(), fmt.Sprintf("dev-%02d", d+1): acked[d+1].Load(),
				})
			}
		})
	}
}

// waitAcked waits until total reaches n, or the devices have finished.
func waitAcked(total *atomic.Int64, n int64, finished <-chan struct{}) {
	for total.Load() < n {
		select {
		case <-finished:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// checkLog checks that the cart's log holds the ops 1..n of each client
// (want: client -> n), each once and in order, at versions 1, 2, 3...
func checkLog(t *testing.T, base, tok string, want map[string]uint64) {
	t.Helper()
	var log []syncserver.Change
	var c *cart.Cart
	for more := true; more; {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/cart/changes?since=%d", base, len(log)), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out syncserver.ChangesResponse
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || out.Compacted || (out.More && len(out.Changes) == 0) {
			t.Fatalf("GET changes since %d: %d %v, compacted %v", len(log), resp.StatusCode, err, out.Compacted)
		}
		log, c, more = append(log, out.Changes...), out.Cart, out.More
	}
	var total uint64
	for _, n := range want {
		total += n
	}
	if uint64(len(log)) != total {
		t.Fatalf("%v: log of %d changes, want the %d acknowledged", want, len(log), total)
	}
	next := map[string]uint64{}
	for i, ch := range log {
		next[ch.Op.Client]++
		if ch.Version != uint64(i+1) || ch.Op.Seq != next[ch.Op.Client] {
			t.Fatalf("log[%d] = version %d, op %s/%d; want version %d, seq %d", i, ch.Version, ch.Op.Client, ch.Op.Seq, i+1, next[ch.Op.Client])
		}
	}
	for client, n := range want {
		if next[client] != n {
			t.Errorf("%s: %d ops logged, want %d", client, next[client], n)
		}
	}
	if c.Version != total {
		t.Errorf("cart at version %d, want %d", c.Version, total)
	}
}

// tryOps posts ops once; an error means no answer (the server is down).
func tryOps(client *http.Client, base, tok string, ops ...cart.Op) (syncserver.OpsResponse, error) {
	var out syncserver.OpsResponse
	body, _ := json.Marshal(syncserver.OpsRequest{Ops: ops})
	req, _ := http.NewRequest("POST", base+"/v1/cart/ops", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := client.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return out, err
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || len(out.Results) != len(ops) {
		return out, fmt.Errorf("POST /v1/cart/ops = %d %s", resp.StatusCode, b)
	}
	return out, nil
}
