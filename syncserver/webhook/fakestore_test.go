package webhook

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// fakeStore is an in-memory syncserver.EventStore with the outbox's
// semantics: ClaimEvents leases each cart's oldest pending event if it is
// due and not leased, starting its series of attempts (TriedSince) if it
// has no failed one. It records every EventFailed call.
type fakeStore struct {
	mu       sync.Mutex
	events   []*fakeEvent // in Seq order
	failures []failure
	claims   int
	// failClaims is how many more ClaimEvents calls fail.
	failClaims int
}

type fakeEvent struct {
	syncserver.Event
	leasedUntil time.Time
}

// failure is one EventFailed call.
type failure struct {
	seq      int64
	attempts int // the event's Attempts before the call
	at, next time.Time
	lastErr  string
	dead     bool
}

var _ syncserver.EventStore = (*fakeStore)(nil)

// add appends pending events, numbering them.
func (s *fakeStore) add(evs ...syncserver.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		ev.Seq = int64(len(s.events) + 1)
		ev.State = syncserver.EventPending
		s.events = append(s.events, &fakeEvent{Event: ev})
	}
}

// get returns the event with this id.
func (s *fakeStore) get(id string) syncserver.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.ID == id {
			return e.Event
		}
	}
	return syncserver.Event{}
}

// failed returns the EventFailed calls so far.
func (s *fakeStore) failed() []failure {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]failure(nil), s.failures...)
}

func (s *fakeStore) EventsAfter(ctx context.Context, cursor string, limit int) ([]syncserver.Event, error) {
	return nil, nil
}

func (s *fakeStore) ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]syncserver.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.claims++
	if s.failClaims > 0 {
		s.failClaims--
		return nil, errors.New("fake: store down")
	}
	seen := map[string]bool{}
	var out []syncserver.Event
	for _, e := range s.events {
		if len(out) >= limit {
			break
		}
		if e.State != syncserver.EventPending || seen[e.CartID] {
			continue
		}
		seen[e.CartID] = true // later events of the cart wait for this one
		if e.NextAt.After(now) || e.leasedUntil.After(now) {
			continue
		}
		e.leasedUntil = now.Add(lease)
		if e.Attempts == 0 {
			e.TriedSince = now // a new series of attempts
		}
		out = append(out, e.Event)
	}
	return out, nil
}

func (s *fakeStore) find(seq int64) *fakeEvent {
	if seq < 1 || int(seq) > len(s.events) {
		return nil
	}
	return s.events[seq-1]
}

func (s *fakeStore) EventDelivered(ctx context.Context, seq int64, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.find(seq)
	if e == nil {
		return syncserver.ErrEventNotFound
	}
	if e.State == syncserver.EventPending {
		e.State = syncserver.EventDelivered
		e.leasedUntil = time.Time{}
	}
	return nil
}

func (s *fakeStore) EventFailed(ctx context.Context, seq int64, next time.Time, lastErr string, dead bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.find(seq)
	if e == nil {
		return syncserver.ErrEventNotFound
	}
	s.failures = append(s.failures, failure{seq: seq, attempts: e.Attempts, at: time.Now(), next: next, lastErr: lastErr, dead: dead})
	if e.State != syncserver.EventPending {
		return nil
	}
	e.Attempts++
	e.LastError = lastErr
	e.NextAt = next
	e.leasedUntil = time.Time{}
	if dead {
		e.State = syncserver.EventDead
	}
	return nil
}

func (s *fakeStore) DeadEvents(ctx context.Context, after int64, limit int) ([]syncserver.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []syncserver.Event
	for _, e := range s.events {
		if e.State == syncserver.EventDead && e.Seq > after && len(out) < limit {
			out = append(out, e.Event)
		}
	}
	return out, nil
}

func (s *fakeStore) RetryEvent(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if e.ID == id && e.State == syncserver.EventDead {
			e.State = syncserver.EventPending
			e.Attempts = 0
			e.NextAt = time.Time{}
			e.TriedSince = time.Time{}
			return nil
		}
	}
	return syncserver.ErrEventNotFound
}

func (s *fakeStore) EventCounts(ctx context.Context) (map[string]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := map[string]int64{}
	for _, e := range s.events {
		counts[e.State]++
	}
	return counts, nil
}

// PruneEvents prunes nothing: find takes seq n to be events[n-1].
func (s *fakeStore) PruneEvents(ctx context.Context, cutoff time.Time, limit int, pending bool) (int, error) {
	return 0, nil
}

func (s *fakeStore) IdleCarts(ctx context.Context, kind string, cutoff time.Time, limit int) ([]string, error) {
	return nil, nil
}
