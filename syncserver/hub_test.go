package syncserver

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// deliveringBus delivers a message for an existing subscription from its
// own goroutine while a new Subscribe is in progress, and waits for that
// delivery, as a Redis bus whose reader confirms subscriptions does.
type deliveringBus struct {
	*MemBus
}

func (b deliveringBus) Subscribe(ctx context.Context, cartID string, fn func([]byte)) (func(), error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.MemBus.Publish(ctx, "busy-cart", []byte("x"))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return nil, context.DeadlineExceeded
	}
	return b.MemBus.Subscribe(ctx, cartID, fn)
}

func TestHubJoinDoesNotHoldLockWhileSubscribing(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(deliveringBus{NewMemBus()}, slog.Default(), m)
	ctx := context.Background()
	var busyConn recordingConn
	busy := &session{ob: newOutbox(&busyConn, 8, func() {})}
	if err := h.join(ctx, "busy-cart", busy); err != nil {
		t.Fatal(err)
	}
	other := &session{ob: newOutbox(&recordingConn{}, 8, func() {})}
	if err := h.join(ctx, "other-cart", other); err != nil {
		t.Fatalf("join while the bus delivers: %v", err)
	}
	busy.ob.finish()
	if len(busyConn.messages()) == 0 {
		t.Fatal("the delivery made during the subscribe never reached its session")
	}
	h.leave("other-cart", other)
	h.leave("busy-cart", busy)
	if len(h.carts) != 0 {
		t.Fatalf("hub keeps %d carts after every session left", len(h.carts))
	}
}
