package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver/gcfloor"
)

// The idle scenario: what an idle shopper's connection costs the server.
// The bench starts the server itself, reads its memory (RSS) and
// goroutines, opens -clients websocket connections (each says hello as a
// new device and reads its welcome and cart, then stays quiet, as an open
// storefront tab between edits does), waits for the server to settle (idle
// long enough to give memory back, see gcfloor), reads them again and
// prints the difference per connection. Connections
// come from -source-addrs loopback addresses (127.0.0.1, 127.0.0.2, ...),
// since one source address runs out of ports near 28,000.

type idleConfig struct {
	restartConfig
	sources int
}

// procRSS reads a process's resident memory in bytes.
func procRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// metric reads one unlabelled value from the server's /metrics.
func metric(addr, name string) (float64, error) {
	v, ok := readMetrics(context.Background(), "http://"+addr, name)[name]
	if !ok {
		return 0, fmt.Errorf("no %s in /metrics of %s", name, addr)
	}
	return v, nil
}

// memMetrics reads the server's goroutine stacks and heap in use, in bytes
// (0 if unavailable).
func memMetrics(addr string) (stack, heap float64) {
	stack, _ = metric(addr, "go_memstats_stack_inuse_bytes")
	heap, _ = metric(addr, "go_memstats_heap_inuse_bytes")
	return stack, heap
}

// settled waits until the server has been idle long enough to give memory
// back (gcfloor.IdleRelease, plus its poll and the release itself) and its
// RSS has not moved by more than 1% over two seconds, and returns it.
func settled(pid int) (int64, error) {
	time.Sleep(gcfloor.IdleRelease + 2*time.Second)
	last, err := procRSS(pid)
	if err != nil {
		return 0, err
	}
	for range 30 {
		time.Sleep(2 * time.Second)
		now, err := procRSS(pid)
		if err != nil {
			return 0, err
		}
		if now <= last+last/100 && now >= last-last/100 {
			return now, nil
		}
		last = now
	}
	return last, nil
}

func runIdle(ctx context.Context, ic idleConfig) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv, _, err := startServer(ctx, ic.restartConfig, 1)
	if srv != nil {
		defer srv.kill()
	}
	if err != nil {
		return err
	}
	pid := srv.cmd.Process.Pid
	// One connection first, so that what every connection shares (the
	// handshake's code paths, pools, the cache's and bus's connections)
	// is in the baseline.
	conns := make([]*websocket.Conn, 0, ic.clients+1)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	wsURL := (&url.URL{Scheme: "ws", Host: ic.addr, Path: "/v1/sync"}).String()
	first, err := idleConn(ctx, wsURL, "127.0.0.1", 0)
	if err != nil {
		return err
	}
	conns = append(conns, first)
	rss0, err := settled(pid)
	if err != nil {
		return err
	}
	g0, err := metric(ic.addr, "go_goroutines")
	if err != nil {
		return err
	}
	stack0, heap0 := memMetrics(ic.addr)
	fmt.Printf("server before: RSS %.1f MiB, %d goroutines, 1 connection\n", float64(rss0)/(1<<20), int(g0))

	start := time.Now()
	var mu sync.Mutex
	var failed atomic.Int64
	var firstErr atomic.Value
	work := make(chan int)
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := range work {
				src := fmt.Sprintf("127.0.0.%d", 1+i%ic.sources)
				c, err := idleConn(ctx, wsURL, src, i+1)
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
	for i := range ic.clients {
		work <- i
	}
	close(work)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d connections failed; first: %v", n, ic.clients, firstErr.Load())
	}
	fmt.Printf("connected %d in %s\n", ic.clients, time.Since(start).Round(time.Millisecond))
	rss1, err := settled(pid)
	if err != nil {
		return err
	}
	g1, err := metric(ic.addr, "go_goroutines")
	if err != nil {
		return err
	}
	open, err := metric(ic.addr, "cartsync_connections")
	if err != nil {
		return err
	}
	n := float64(ic.clients)
	fmt.Printf("server after: RSS %.1f MiB, %d goroutines, %d connections open\n", float64(rss1)/(1<<20), int(g1), int(open))
	stack1, heap1 := memMetrics(ic.addr)
	fmt.Printf("per idle connection: %.1f KB of RSS, %.2f goroutines; of it %.1f KB goroutine stacks and %.1f KB heap in use\n",
		float64(rss1-rss0)/n/1000, (g1-g0)/n, (stack1-stack0)/n/1000, (heap1-heap0)/n/1000)
	return nil
}

// idleConn opens a websocket from source, says hello as a new device and
// reads the welcome and the cart.
func idleConn(ctx context.Context, wsURL, source string, i int) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	client := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{HTTPClient: client})
	if err != nil {
		return nil, err
	}
	hello, err := protocol.Encode(&protocol.Message{Type: protocol.TypeHello, ID: "h", Protocol: protocol.Version, Client: fmt.Sprintf("idle-%d", i)})
	if err != nil {
		c.CloseNow()
		return nil, err
	}
	if err := c.Write(ctx, websocket.MessageText, hello); err != nil {
		c.CloseNow()
		return nil, err
	}
	for _, want := range []string{protocol.TypeWelcome, protocol.TypeCart} {
		_, b, err := c.Read(ctx)
		if err != nil {
			c.CloseNow()
			return nil, err
		}
		m, err := protocol.Decode(b)
		if err != nil || m.Type != want {
			c.CloseNow()
			return nil, fmt.Errorf("connection %d: got %s, want %s (%v)", i, b, want, err)
		}
	}
	// Nothing reads the connection from now on: the server sends nothing
	// to an idle shopper until the heartbeat's timeout, after the
	// measurement.
	return c, nil
}
