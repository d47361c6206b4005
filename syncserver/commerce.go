package syncserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
)

// The storefront's side of the store: its catalog and the outbox of cart
// events. Checkouts live in their cart's record (cart.Cart.Checkouts), so
// that creating and completing one is a change of the cart, locked and
// committed with it. Every Store that serves (sqlite, postgres, and the
// redis cache passing through to them) and memstore implement these;
// syncserver/storetest checks them.

// CatalogStore holds the storefront's catalog, shared by every instance.
type CatalogStore interface {
	// UpsertItems stores items, replacing those with the same SKU, all in
	// one transaction, each with UpdatedAt = at.
	UpsertItems(ctx context.Context, items []cart.Item, at time.Time) error
	// DeleteItems deletes the items with these SKUs, in one transaction,
	// and returns how many existed.
	DeleteItems(ctx context.Context, skus []string) (int, error)
	// Items returns the stored items among skus, by SKU; unknown SKUs are
	// absent.
	Items(ctx context.Context, skus []string) (map[string]cart.Item, error)
	// ListItems returns up to limit items with SKU > after, in SKU order.
	ListItems(ctx context.Context, after string, limit int) ([]cart.Item, error)
}

// Event is one cart event in the outbox. The core fills ID, Type, CartID,
// At, Data and, for coalescing types, Coalesce; the store fills the rest.
type Event struct {
	// Seq is the store's number for the event, increasing in insertion
	// order; within one cart it is the order of the changes.
	Seq int64 `json:"-"`
	// Cursor is the event's place in the feed (opaque to clients):
	// every event committed after one that was read has a greater cursor.
	Cursor string `json:"cursor,omitempty"`
	// ID is stable over redeliveries: receivers deduplicate on it.
	ID     string          `json:"id"`
	Type   string          `json:"type"`
	CartID string          `json:"cart_id"`
	At     time.Time       `json:"at"`
	Data   json.RawMessage `json:"data"`
	// Coalesce: this event replaces the cart's pending events of the same
	// type that no delivery has tried yet (cart.updated).
	Coalesce bool `json:"-"`

	// Delivery state. The core may write an event as delivered (a server
	// without webhooks: nobody to deliver it to, the feed shows it and
	// the retention prunes it); otherwise it is written pending.
	State     string    `json:"state,omitempty"` // pending, delivered, dead, coalesced
	Attempts  int       `json:"attempts,omitempty"`
	NextAt    time.Time `json:"next_at,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// TriedSince is when the current series of delivery attempts began,
	// which the retry window counts from: the claim that found the event
	// with no failed attempt (Attempts 0: never tried, or revived by
	// RetryEvent). Zero until the event is first claimed.
	TriedSince time.Time `json:"-"`
}

// Event delivery states.
const (
	EventPending   = "pending"
	EventDelivered = "delivered"
	EventDead      = "dead"      // given up after the retry window
	EventCoalesced = "coalesced" // replaced by a later event of the same type
)

// Event types.
const (
	EventCartCreated       = "cart.created"
	EventCartUpdated       = "cart.updated"
	EventCartMerged        = "cart.merged"
	EventCartExpired       = "cart.expired"
	EventCartAbandoned     = "cart.abandoned"
	EventCheckoutCreated   = "checkout.created"
	EventCheckoutCompleted = "checkout.completed"
	EventCheckoutCancelled = "checkout.cancelled"
)

// EventStore is the outbox. Mutate and Merge write the events fn appended
// to Record.Events in the same transaction as the change; Purge writes a
// cart.expired event (ExpiredEvent) for each cart it expires, in the
// transaction that expires it.
type EventStore interface {
	// EventsAfter is the feed: up to limit events (coalesced ones left
	// out) whose cursor is after the given one ("" for the start), in
	// cursor order. An event that commits later never gets a cursor
	// before one already returned. A cursor the store did not give is
	// ErrBadCursor: one that is not a cursor, and one past every cursor
	// given so far (as from before the store was reset), which would
	// otherwise read empty pages forever.
	EventsAfter(ctx context.Context, cursor string, limit int) ([]Event, error)
	// ClaimEvents leases up to limit pending events that are due (NextAt
	// <= now) and not leased, each the oldest pending event of its cart,
	// until now+lease: no other ClaimEvents returns them meanwhile
	// (several instances share the work). It sets TriedSince to now on
	// those with no failed attempt; one with failed attempts and no
	// TriedSince (written before stores kept it) gets its At.
	ClaimEvents(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]Event, error)
	// EventDelivered marks the event delivered and ends its lease.
	EventDelivered(ctx context.Context, seq int64, at time.Time) error
	// EventFailed records a failed attempt (Attempts+1, LastError) and
	// ends the lease: the event is due again at next, or dead when dead.
	EventFailed(ctx context.Context, seq int64, next time.Time, lastErr string, dead bool) error
	// DeadEvents lists up to limit dead events with Seq > after, in order.
	DeadEvents(ctx context.Context, after int64, limit int) ([]Event, error)
	// RetryEvent makes a dead event pending again, due at once, with its
	// attempts reset, so that its next claim starts a new series of
	// attempts (TriedSince). ErrEventNotFound if no dead event has that
	// id.
	RetryEvent(ctx context.Context, id string) error
	// EventCounts counts events by state.
	EventCounts(ctx context.Context) (map[string]int64, error)
	// PruneEvents deletes up to limit events that are no longer pending
	// (delivered, coalesced or dead) and whose At is before cutoff, oldest
	// first, and returns how many it deleted. Pending events are deleted
	// only with pending (a server that delivers no events: they wait for
	// nobody), whatever their age otherwise.
	PruneEvents(ctx context.Context, cutoff time.Time, limit int, pending bool) (int, error)
	// IdleCarts lists up to limit live, unmerged carts of kind whose last
	// change is before cutoff and for which no abandonment was recorded
	// since (Meta.AbandonedAt differs from Meta.UpdatedAt).
	IdleCarts(ctx context.Context, kind string, cutoff time.Time, limit int) ([]string, error)
}

// ErrEventNotFound means no event fits.
var ErrEventNotFound = errors.New("syncserver: event not found")

// ExpiredEvent is the event Purge writes for a cart it expires: delivered
// when settled (nobody delivers events), else pending.
func ExpiredEvent(cartID, kind string, at time.Time, settled bool) Event {
	data, _ := json.Marshal(map[string]any{"cart_id": cartID, "kind": kind})
	e := Event{ID: newEventID(), Type: EventCartExpired, CartID: cartID, At: at, Data: data}
	if settled {
		e.State = EventDelivered
	}
	return e
}

// newEventID returns a new event id: "evt_" and 32 hex digits.
func newEventID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return "evt_" + hex.EncodeToString(b)
}

// TombstoneChecker is a Store that can tell cheaply whether it keeps a
// tombstone of a kind of cart. Without it (or when it fails) the server
// assumes it does.
type TombstoneChecker interface {
	HasTombstones(ctx context.Context, kind string) (bool, error)
}

// mayHaveTombstones reports whether st may keep a tombstone of kind.
func mayHaveTombstones(ctx context.Context, st Store, kind string) bool {
	if u, ok := st.(Uncacher); ok {
		st = u.Uncached()
	}
	tc, ok := st.(TombstoneChecker)
	if !ok {
		return true
	}
	has, err := tc.HasTombstones(ctx, kind)
	return err != nil || has
}

// Uncacher is a Store that caches another (the Redis cache): Uncached
// returns the store it reads through.
type Uncacher interface {
	Uncached() Store
}

// NewCartNoter is a Store that can be told a cart id was just issued to a
// new device (so no record of it exists yet): the Redis cache remembers it
// as missing, and the device's later hellos, until it first edits, are
// answered without reading the durable store. Most visitors never add to
// their cart; each of their reconnections would otherwise be a database
// read that finds nothing.
type NewCartNoter interface {
	// NoteNewCart is called before the device gets its token; it
	// must not fail the issuance.
	NoteNewCart(ctx context.Context, cartID string)
}

// noteNewCart tells the store, if it wants to know, that cartID was just
// issued to a new device.
func (s *Server) noteNewCart(ctx context.Context, cartID string) {
	if n, ok := s.store.(NewCartNoter); ok {
		n.NoteNewCart(ctx, cartID)
	}
}

// freshStore is the store to read what changes without a new cart version
// from (checkouts and their status): past any cache.
func (s *Server) freshStore() Store {
	if u, ok := s.store.(Uncacher); ok {
		return u.Uncached()
	}
	return s.store
}
