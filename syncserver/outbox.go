package syncserver

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// outbox is a connection's queue of outgoing messages. A writer goroutine
// runs only while something is queued, and the queue's memory is released
// when it empties, so an idle connection costs its reader alone.
//
// Messages are written in the order they were queued. A full queue drops
// the connection (a slow consumer re-syncs when it reconnects).
type outbox struct {
	conn wireConn
	dw   deadlineWriter // conn, if it takes a deadline as a time
	max  int
	// onDrop is called once when a full queue drops the connection.
	onDrop func()

	mu      sync.Mutex
	queue   [][]byte
	writing bool // a writer goroutine runs
	closed  bool // nothing more is accepted
	failed  bool // a write failed or the queue overflowed: nothing more is written
	// bye closes the connection with byeStatus and byeReason once what
	// is queued is written.
	bye       bool
	byeStatus websocket.StatusCode
	byeReason string
	// drained is closed when the writer stops after finish.
	drained chan struct{}
}

// wireConn is what an outbox needs of a websocket connection.
type wireConn interface {
	Write(ctx context.Context, typ websocket.MessageType, p []byte) error
	Close(code websocket.StatusCode, reason string) error
	CloseNow() error
}

func newOutbox(conn wireConn, max int, onDrop func()) *outbox {
	dw, _ := conn.(deadlineWriter)
	return &outbox{conn: conn, dw: dw, max: max, onDrop: onDrop}
}

// send queues b without blocking; it does nothing once the outbox is
// closed.
func (ob *outbox) send(b []byte) {
	ob.mu.Lock()
	if ob.closed || ob.failed {
		ob.mu.Unlock()
		return
	}
	if len(ob.queue) >= ob.max {
		ob.failed = true
		ob.queue = nil
		ob.mu.Unlock()
		ob.onDrop()
		ob.conn.CloseNow()
		return
	}
	ob.queue = append(ob.queue, b)
	start := ob.startLocked()
	ob.mu.Unlock()
	if start {
		go ob.write()
	}
}

// close queues b as the last message, then closes the connection with
// status and reason once everything before it is written.
func (ob *outbox) close(b []byte, status websocket.StatusCode, reason string) {
	ob.mu.Lock()
	if ob.closed || ob.failed {
		ob.mu.Unlock()
		return
	}
	if b != nil {
		ob.queue = append(ob.queue, b)
	}
	ob.closed, ob.bye = true, true
	ob.byeStatus, ob.byeReason = status, reason
	start := ob.startLocked()
	ob.mu.Unlock()
	if start {
		go ob.write()
	}
}

// finish accepts nothing more and waits until what is queued is written
// (or the connection failed).
func (ob *outbox) finish() {
	ob.mu.Lock()
	ob.closed = true
	if !ob.writing {
		ob.mu.Unlock()
		return
	}
	if ob.drained == nil {
		ob.drained = make(chan struct{})
	}
	done := ob.drained
	ob.mu.Unlock()
	<-done
}

// startLocked reports whether a writer must be started, and marks it
// started.
func (ob *outbox) startLocked() bool {
	if ob.writing {
		return false
	}
	ob.writing = true
	return true
}

// write is the writer goroutine: it writes until the queue is empty, then
// stops (closing the connection first if asked to).
func (ob *outbox) write() {
	for {
		ob.mu.Lock()
		if ob.failed || len(ob.queue) == 0 {
			ob.queue = nil
			bye := ob.bye && !ob.failed
			if bye {
				// Nothing can be queued after bye. Close waits for the
				// peer's close frame, which ends the reader.
				ob.bye = false
				ob.mu.Unlock()
				ob.conn.Close(ob.byeStatus, ob.byeReason)
				ob.mu.Lock()
			}
			ob.writing = false
			done := ob.drained
			ob.drained = nil
			ob.mu.Unlock()
			if done != nil {
				close(done)
			}
			return
		}
		b := ob.queue[0]
		ob.queue[0] = nil
		ob.queue = ob.queue[1:]
		ob.mu.Unlock()
		if !ob.writeOne(b) {
			ob.mu.Lock()
			ob.failed = true
			ob.mu.Unlock()
			ob.conn.CloseNow()
		}
	}
}

// deadlineWriter is a wireConn that takes a write's deadline as a time
// (frameConn): no context and timer per message.
type deadlineWriter interface {
	WriteBy(deadline time.Time, typ websocket.MessageType, p []byte) error
}

func (ob *outbox) writeOne(b []byte) bool {
	if ob.dw != nil {
		return ob.dw.WriteBy(time.Now().Add(writeTimeout), websocket.MessageText, b) == nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	return ob.conn.Write(ctx, websocket.MessageText, b) == nil
}
