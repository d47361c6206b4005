package syncserver

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// recordingConn is a wireConn that records what is written to it; a
// write blocks while gate is set and not yet closed, and fails once fail
// is set.
type recordingConn struct {
	mu      sync.Mutex
	wrote   []string
	gate    chan struct{}
	fail    bool
	closed  string // "close <status> <reason>" or "now"
	closes  int
	entered chan struct{} // receives once per write, if set
}

func (c *recordingConn) Write(ctx context.Context, _ websocket.MessageType, p []byte) error {
	c.mu.Lock()
	gate, entered := c.gate, c.entered
	c.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		return errors.New("broken pipe")
	}
	c.wrote = append(c.wrote, string(p))
	return nil
}

func (c *recordingConn) Close(code websocket.StatusCode, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closes++
	c.closed = fmt.Sprintf("close %d %s", code, reason)
	return nil
}

func (c *recordingConn) CloseNow() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closes++
	c.closed = "now"
	return nil
}

func (c *recordingConn) messages() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.wrote...)
}

func (c *recordingConn) state() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed, c.closes
}

func TestOutboxWritesInOrderAndStopsWhenIdle(t *testing.T) {
	conn := &recordingConn{}
	ob := newOutbox(conn, 100, func() { t.Error("dropped") })
	var want []string
	for i := range 50 {
		m := fmt.Sprint("m", i)
		want = append(want, m)
		ob.send([]byte(m))
	}
	ob.finish()
	if got := conn.messages(); !reflect.DeepEqual(got, want) {
		t.Fatalf("wrote %v, want %v", got, want)
	}
	ob.mu.Lock()
	writing, queue := ob.writing, ob.queue
	ob.mu.Unlock()
	if writing || queue != nil {
		t.Fatalf("after finish: writing %v, queue %v; want no writer and the queue released", writing, queue)
	}
	ob.send([]byte("late"))
	if got := conn.messages(); len(got) != 50 {
		t.Fatalf("a message sent after finish was written: %v", got[len(got)-1])
	}
	if closed, _ := conn.state(); closed != "" {
		t.Fatalf("finish closed the connection (%s); the reader closes it", closed)
	}
}

func TestOutboxOverflowDropsOnce(t *testing.T) {
	conn := &recordingConn{gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	drops := 0
	ob := newOutbox(conn, 3, func() { drops++ })
	ob.send([]byte("first")) // taken by the writer, blocked in Write
	<-conn.entered
	for _, m := range []string{"a", "b", "c", "overflow", "more"} {
		ob.send([]byte(m))
	}
	if drops != 1 {
		t.Fatalf("onDrop called %d times, want 1", drops)
	}
	if closed, _ := conn.state(); closed != "now" {
		t.Fatalf("overflow: connection %q, want closed at once", closed)
	}
	close(conn.gate)
	ob.finish()
	if got := conn.messages(); !reflect.DeepEqual(got, []string{"first"}) {
		t.Fatalf("after the overflow the writer wrote %v, want only the message in hand", got)
	}
}

func TestOutboxCloseAfterQueued(t *testing.T) {
	conn := &recordingConn{}
	ob := newOutbox(conn, 10, func() { t.Error("dropped") })
	ob.send([]byte("ack"))
	ob.close([]byte("going_away"), websocket.StatusGoingAway, "server restarting")
	ob.close([]byte("second bye"), websocket.StatusPolicyViolation, "ignored")
	ob.send([]byte("after bye"))
	ob.finish()
	if got, want := conn.messages(), []string{"ack", "going_away"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("wrote %v, want %v", got, want)
	}
	closed, n := conn.state()
	if want := fmt.Sprintf("close %d server restarting", websocket.StatusGoingAway); closed != want || n != 1 {
		t.Fatalf("closed %q %d times, want %q once", closed, n, want)
	}
}

func TestOutboxWriteFailureStopsWriting(t *testing.T) {
	conn := &recordingConn{fail: true}
	ob := newOutbox(conn, 10, func() { t.Error("dropped") })
	ob.send([]byte("x"))
	ob.send([]byte("y"))
	ob.finish()
	if got := conn.messages(); len(got) != 0 {
		t.Fatalf("wrote %v through a failed connection", got)
	}
	if closed, _ := conn.state(); closed != "now" {
		t.Fatalf("after a failed write the connection is %q, want closed at once", closed)
	}
	ob.close([]byte("bye"), websocket.StatusGoingAway, "x")
	ob.finish()
	if closed, n := conn.state(); closed != "now" || n != 1 {
		t.Fatalf("a bye after a failure closed again: %q, %d closes", closed, n)
	}
}

func TestOutboxConcurrentSenders(t *testing.T) {
	conn := &recordingConn{}
	ob := newOutbox(conn, 10000, func() { t.Error("dropped") })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				ob.send(fmt.Appendf(nil, "%d-%d", g, i))
			}
		})
	}
	wg.Wait()
	ob.finish()
	got := conn.messages()
	if len(got) != 8*200 {
		t.Fatalf("wrote %d messages, want %d", len(got), 8*200)
	}
	next := map[int]int{}
	for _, m := range got {
		var g, i int
		fmt.Sscanf(m, "%d-%d", &g, &i)
		if i != next[g] {
			t.Fatalf("sender %d: message %d written where %d was due", g, i, next[g])
		}
		next[g]++
	}
}
