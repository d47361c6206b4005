package main

// The scale scenario (-scenario scale, `make scale`): several server
// instances on one Postgres and one Redis, as in production past one
// machine. The bench starts -instances servers on consecutive ports from
// -server's, holds -clients idle websocket connections spread across them
// (from child processes of its own, -hold-per-process each, since one
// process may hold at most as many sockets as its open-files limit), then
// runs the peer workload with the shoppers spread across the instances and
// times edits crossing instances (a device on one instance, its cart's
// other device on the next: the push goes through Redis).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
)

type scaleConfig struct {
	restartConfig
	instances, perProcess, sources int
	peer                           peerConfig
}

func runScale(ctx context.Context, sc scaleConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	host, port, err := net.SplitHostPort(sc.addr)
	if err != nil {
		return err
	}
	first, err := strconv.Atoi(port)
	if err != nil {
		return err
	}
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.stop()
		}
	}()
	var addrs, bases []string
	for i := range sc.instances {
		rc := sc.restartConfig
		rc.addr = net.JoinHostPort(host, strconv.Itoa(first+i))
		srv, _, err := startServer(ctx, rc, i+1)
		if srv != nil {
			servers = append(servers, srv)
		}
		if err != nil {
			return err
		}
		addrs, bases = append(addrs, rc.addr), append(bases, "http://"+rc.addr)
	}
	fmt.Printf("%d instances on one Postgres and one Redis: %s\n", sc.instances, strings.Join(addrs, ", "))
	rss0 := make([]int64, len(servers))
	for i, s := range servers {
		if rss0[i], err = settled(s.cmd.Process.Pid); err != nil {
			return err
		}
	}

	// The idle connections, from child processes.
	start := time.Now()
	var children []*exec.Cmd
	var stdins []io.WriteCloser
	defer func() {
		for i, c := range children {
			stdins[i].Close()
			c.Wait()
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for off := 0; off < sc.clients; off += sc.perProcess {
		n := min(sc.perProcess, sc.clients-off)
		cmd := exec.CommandContext(ctx, self, "-scenario", "hold", "-targets", strings.Join(addrs, ","),
			"-clients", strconv.Itoa(n), "-hold-offset", strconv.Itoa(off), "-source-addrs", strconv.Itoa(sc.sources))
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		children, stdins = append(children, cmd), append(stdins, in)
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "ready") {
			return fmt.Errorf("holder of connections %d-%d: %q %v", off, off+n, line, err)
		}
	}
	fmt.Printf("%d idle connections open across the instances, from %d processes, in %s\n",
		sc.clients, len(children), time.Since(start).Round(time.Millisecond))
	for i, s := range servers {
		rss, err := settled(s.cmd.Process.Pid)
		if err != nil {
			return err
		}
		open, _ := metric(addrs[i], "cartsync_connections")
		g, _ := metric(addrs[i], "go_goroutines")
		fmt.Printf("instance %d: %d connections, RSS %.0f MiB (%.1f KB per connection), %d goroutines\n",
			i+1, int(open), float64(rss)/(1<<20), float64(rss-rss0[i])/max(open, 1)/1000, int(g))
	}

	// The peer workload on top, spread across the instances.
	sc.peer.servers = bases
	if err := runPeer(ctx, sc.peer); err != nil {
		return err
	}
	return crossInstance(ctx, bases, 100, sc.peer.duration)
}

// crossInstance has carts devices on one instance edit in a closed loop
// while their carts' second devices, on the next instance, watch: it
// prints how long an edit takes to reach the other instance's device.
func crossInstance(ctx context.Context, bases []string, carts int, d time.Duration) error {
	if len(bases) < 2 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	var mu sync.Mutex
	var lat []time.Duration
	sent := sync.Map{} // nonce -> time.Time
	var running sync.WaitGroup
	defer running.Wait()
	defer cancel()
	start := func(base, tok string, onChange func(syncclient.State)) (*syncclient.Engine, error) {
		st := syncclient.NewMemStorage()
		if _, err := st.SwapDeviceToken(ctx, "", tok); err != nil {
			return nil, err
		}
		e, err := syncclient.New(syncclient.Config{Storage: st, Logger: logger, OnChange: onChange,
			Dial: syncclient.WebsocketDialer("ws" + strings.TrimPrefix(base, "http") + "/v1/sync")})
		if err != nil {
			return nil, err
		}
		running.Go(func() { e.Run(ctx) })
		return e, nil
	}
	editors := make([]*syncclient.Engine, carts)
	for i := range carts {
		tok, err := newDevice(ctx, bases[i%len(bases)])
		if err != nil {
			return err
		}
		if editors[i], err = start(bases[i%len(bases)], tok, nil); err != nil {
			return err
		}
		seen := map[string]bool{}
		if _, err := start(bases[(i+1)%len(bases)], tok, func(s syncclient.State) {
			for _, l := range s.Cart.Lines {
				if n := l.Details.Name; n != "" && !seen[n] {
					seen[n] = true
					if t, ok := sent.Load(n); ok {
						mu.Lock()
						lat = append(lat, time.Since(t.(time.Time)))
						mu.Unlock()
					}
				}
			}
		}); err != nil {
			return err
		}
	}
	time.Sleep(2 * time.Second) // every engine connected
	var edits atomic.Int64
	var loops sync.WaitGroup
	stop := time.Now().Add(d)
	for i, e := range editors {
		loops.Go(func() {
			for n := 0; time.Now().Before(stop) && ctx.Err() == nil; n++ {
				nonce := fmt.Sprintf("x%d-%d", i, n)
				sent.Store(nonce, time.Now())
				if err := e.Add(ctx, fmt.Sprintf("SKU-%d", n%5), nil, 1, &cart.Details{Name: nonce}); err != nil {
					return
				}
				if err := e.Flush(ctx); err != nil {
					return
				}
				edits.Add(1)
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	loops.Wait()
	time.Sleep(time.Second) // the last pushes arrive
	mu.Lock()
	defer mu.Unlock()
	fmt.Printf("across instances (%d carts, a device on each of two instances, %d edits): propagation p50 %s, p95 %s, p99 %s (%d samples)\n",
		carts, edits.Load(), ms(pct(lat, 0.50)), ms(pct(lat, 0.95)), ms(pct(lat, 0.99)), len(lat))
	return nil
}

// runHold is a child of the scale scenario: it opens clients idle
// connections spread over targets, prints "ready" and holds them until its
// standard input ends.
func runHold(ctx context.Context, targets []string, clients, offset, sources int) error {
	var mu sync.Mutex
	var conns []*websocket.Conn
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	var failed atomic.Int64
	var firstErr atomic.Value
	work := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range work {
				src := fmt.Sprintf("127.0.0.%d", 1+i%sources)
				wsURL := (&url.URL{Scheme: "ws", Host: targets[i%len(targets)], Path: "/v1/sync"}).String()
				c, err := idleConn(ctx, wsURL, src, i)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		})
	}
	for i := range clients {
		work <- offset + i
	}
	close(work)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d connections failed; first: %v", n, clients, firstErr.Load())
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return nil
}
