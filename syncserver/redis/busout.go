package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cartsync/cartsync/shared/logkey"
)

// The Bus's publishing side: the queue, the publisher that sends it to
// Redis in pipelines, what it lost on the way (TakeLost, Losing), and its
// last round at Close.

// Publish sends payload to the subscribers of cartID on every instance.
func (b *Bus) Publish(ctx context.Context, cartID string, payload []byte) error {
	if b.closing() {
		return ErrClosed
	}
	select {
	case b.pubs <- publication{b.channel(cartID), payload}:
		return nil
	default:
		b.drop(b.channel(cartID))
		return fmt.Errorf("redis: publish cart %s: %w", cartID, errPublishQueueFull)
	}
}

// drop counts a publication on ch dropped on a full queue, for Degraded
// and TakeLost.
func (b *Bus) drop(ch string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lostLocked(ch)
	b.dropped++
	b.droppedAt = time.Now()
}

// errPublishQueueFull is a Publish dropped because Redis is not keeping up.
var errPublishQueueFull = errors.New("queue full, Redis is not keeping up")

// publisher publishes queued payloads in order until Close: whatever has
// queued up goes to Redis in one pipeline (one round trip), so a burst of
// updates does not wait for one round trip each.
func (b *Bus) publisher() {
	defer close(b.published)
	batch := make([]publication, 0, publishBatch)
	for {
		select {
		case <-b.done:
			b.drain(batch)
			return
		case p := <-b.pubs:
			batch = append(batch[:0], p)
		}
		batch = b.more(batch)
		b.send(batch)
		clear(batch)
	}
}

// more adds to batch what has queued up meanwhile, up to publishBatch.
func (b *Bus) more(batch []publication) []publication {
	for len(batch) < publishBatch {
		select {
		case p := <-b.pubs:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

// send publishes batch in one pipeline (one round trip), and returns how
// it went.
func (b *Bus) send(batch []publication) error {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	pipe := b.client.Pipeline()
	for _, p := range batch {
		pipe.Publish(ctx, p.channel, p.payload)
	}
	_, err := pipe.Exec(ctx)
	cancel()
	err = plain(err)
	b.outcome(err)
	if err != nil {
		b.log.Warn("redis bus: publish", logkey.Messages, len(batch), logkey.Err, err)
		b.mu.Lock()
		for _, p := range batch {
			b.lostLocked(p.channel)
		}
		b.mu.Unlock()
	}
	return err
}

// lostLocked records that a publication on ch did not reach Redis, if ch
// is a cart's. b.mu is held.
func (b *Bus) lostLocked(ch string) {
	id, ok := strings.CutPrefix(ch, b.prefix+"cart:")
	if !ok {
		return
	}
	if b.lost == nil {
		b.lost = map[string]bool{}
	}
	if len(b.lost) < maxLost {
		b.lost[id] = true
	} else {
		b.lostAll = true
	}
	b.lostN.Add(1)
}

// TakeLost returns and forgets the carts whose publications from this
// instance did not reach Redis (syncserver.Lossy); all when there were
// more than maxLost.
func (b *Bus) TakeLost() ([]string, bool) {
	if b.lostN.Load() == 0 {
		return nil, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ids := make([]string, 0, len(b.lost))
	for id := range b.lost {
		ids = append(ids, id)
	}
	all := b.lostAll
	b.lost, b.lostAll = nil, false
	b.lostN.Store(0)
	return ids, all
}

// Losing reports whether publications do not get through now: the last
// publish failed, or the subscription was made again and no heartbeat has
// come back through it since (syncserver.Lossy).
func (b *Bus) Losing() bool { return b.failing.Load() || b.quiet.Load() }

// drain publishes what is still queued when the bus closes: in a graceful
// shutdown, the pushes of the last edits acknowledged, which the other
// instances' connections would otherwise miss. It gives up after
// closeDrain, or at the first failure (Redis is away: the clients repair by
// the version gap).
func (b *Bus) drain(batch []publication) {
	deadline := time.Now().Add(closeDrain)
	for time.Now().Before(deadline) {
		batch = b.more(batch[:0])
		if len(batch) == 0 {
			return
		}
		err := b.send(batch)
		clear(batch)
		if err != nil {
			return
		}
	}
}
