package syncserver

import (
	"context"
	"errors"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
)

// Store is the durable record of carts. Implementations: syncserver/sqlite
// (the embedded default), syncserver/postgres; syncserver/redis wraps one as
// a read-through cache. Every implementation passes syncserver/storetest.
type Store interface {
	// Mutate runs fn on the cart with the cart locked against every other
	// Mutate, in one transaction. The record holds the cart (a new, empty
	// cart at version 0 if it does not exist) and the last seq applied for
	// each of clients (0 if none). If fn returns nil, everything fn changed
	// in the record is committed durably before Mutate returns: the cart,
	// its meta, the seqs, and rec.Appended added to the change log. If fn
	// returns an error nothing is written and Mutate returns that error.
	//
	// fn may run more than once, each time on a fresh record: a store may
	// run it again after a failed attempt, or first on the cart as this
	// instance last wrote it and, if another writer changed the cart
	// since, again on the cart as locked (then, if the cart expired or
	// was deleted meanwhile, not again: Mutate returns ErrCartExpired or
	// ErrCartGone). Only the last run counts: fn changes nothing but the
	// record and its caller's variables, sets all of those it sets on
	// every run, and the caller reads them only when Mutate returns nil
	// or fn's own error.
	Mutate(ctx context.Context, cartID string, clients []string, fn func(rec *Record) error) error

	// Load returns the committed cart and the last seq applied for each of
	// clients. A cart that does not exist is ErrCartNotFound.
	Load(ctx context.Context, cartID string, clients []string) (*Record, error)

	// Changes returns the logged changes with version > since, oldest first,
	// at most limit. If the log no longer reaches back to since+1 it
	// returns ErrCompacted.
	Changes(ctx context.Context, cartID string, since uint64, limit int) ([]Change, error)

	// Merge runs fn on two carts locked together (in id order, so two
	// merges never deadlock), in one transaction: the login merge of a
	// guest cart (from) into a user cart (into). from holds the guest cart
	// and the last seq of EVERY client that ever edited it; into holds the
	// user cart (a new empty one at version 0 if it does not exist) and its
	// last seq for those same clients. If fn returns nil everything fn
	// changed in both records (carts, metas, seqs, appended changes) is
	// committed durably; otherwise nothing is written. If from does not
	// exist, Merge returns ErrCartNotFound without calling fn; an expired
	// cart on either side is ErrCartExpired.
	Merge(ctx context.Context, fromID, intoID string, fn func(from, into *Record) error) error

	// Purge expires up to limit carts of the given kind whose last change
	// is before cutoff and that are not already expired: it drops their
	// lines, log and seqs but keeps a tombstone, so that a device that
	// comes back is told its cart expired rather than handed a silently
	// empty one. It also deletes tombstones that expired before
	// tombstoneCutoff. It returns the ids it expired. A cart changed after
	// cutoff is never touched, even if it changes while Purge runs.
	// Calling it again resumes where it stopped; it is idempotent. Each
	// cart expired gets its cart.expired event (ExpiredEvent), written
	// delivered when settled (a server that delivers no events), pending
	// otherwise.
	Purge(ctx context.Context, kind string, cutoff, tombstoneCutoff time.Time, limit int, settled bool) ([]string, error)

	// Revive turns the tombstone of an expired user cart back into a
	// cart: an empty one of user at the version after the tombstone's,
	// last changed at now, with no log and no seqs, so that its user goes
	// on with a new, empty cart under the same id (a user cart's id is its
	// user's; a guest device gets a new token instead, so guest carts are
	// never revived). It reports whether it revived the cart: false, with
	// no error, for a cart that is live, a guest cart's tombstone or no
	// record at all. It is idempotent.
	Revive(ctx context.Context, cartID, user string, now time.Time) (bool, error)

	// Erase forgets cartID and the guest carts merged into it, with all
	// that is kept of them: lines, checkouts, change log, seqs, and their
	// events in the outbox (a store that is an EventStore). The guest carts
	// are deleted; cartID is left empty and live at the version after its
	// own, started there (cart.Cart.Started: a device that held it tells its
	// shopper), with nothing else, so that its versions never repeat (a cart made
	// anew would start at 1 again, and a copy of the erased cart written
	// late to a cache would stand over it). It locks cartID first, so a
	// login merging into it ends before, or starts after. It returns the
	// ids it erased (cartID if it existed), none for a cart it does not
	// hold. A user's request to be forgotten.
	Erase(ctx context.Context, cartID string) ([]string, error)

	// Secret returns the named server secret, creating it with the given
	// value if it does not exist yet, so that every instance sharing the
	// store agrees on it.
	Secret(ctx context.Context, name string, create []byte) ([]byte, error)

	// Ping checks that the store answers.
	Ping(ctx context.Context) error

	Close() error
}

// Errors returned by stores.
var (
	// ErrCartNotFound means no cart has that id.
	ErrCartNotFound = errors.New("syncserver: cart not found")
	// ErrCompacted means the change log no longer holds the asked range.
	ErrCompacted = errors.New("syncserver: change log compacted")
	// ErrCartExpired means the cart was purged for inactivity; only its
	// tombstone remains. Load and Mutate return it.
	ErrCartExpired = errors.New("syncserver: cart expired")
	// ErrCartGone means the cart was deleted (purged) while a change to
	// it was being written; nothing was changed and the change may be
	// retried.
	ErrCartGone = errors.New("syncserver: cart deleted while being changed; retry")
)

// Cart kinds.
const (
	KindGuest = "guest" // keyed by device token
	KindUser  = "user"  // keyed by user id
)

// Meta is what the server keeps about a cart besides its lines.
type Meta struct {
	Kind      string    `json:"kind"`
	UpdatedAt time.Time `json:"updated_at"`
	// MergedInto is the user cart a guest cart was merged into at login;
	// a merged guest cart is a tombstone and takes no more edits.
	MergedInto string `json:"merged_into,omitempty"`
	// AbandonedAt is the UpdatedAt for which a cart.abandoned event was
	// written (or the cart found not to need one): one per idle period.
	AbandonedAt time.Time `json:"abandoned_at,omitzero"`
}

// Record is a cart as a store holds it.
type Record struct {
	Cart   *cart.Cart
	Meta   Meta
	Exists bool // false for a cart Mutate created
	// Seqs holds the last seq applied for each client asked about.
	Seqs map[string]uint64
	// Appended are changes fn added, to be written to the log.
	Appended []Change
	// Events are events fn added, to be written to the outbox (see
	// EventStore) in the same transaction.
	Events []Event
}

// Change is one entry of a cart's change log: the operation that produced a
// version.
type Change struct {
	Version  uint64         `json:"version"`
	Op       cart.Op        `json:"op"`
	Warnings []cart.Warning `json:"warnings,omitempty"`
	At       time.Time      `json:"at"`
}

// LogKeep is how many changes per cart stores keep; older ones are
// compacted away (the snapshot holds their effect).
const LogKeep = 500

// Bus carries cart updates between server instances. The in-process bus is
// the default; syncserver/redis replaces it for several instances.
// Delivery is at most once: a missed message is noticed by its version gap.
type Bus interface {
	// Publish sends payload to every subscriber of cartID on any instance.
	Publish(ctx context.Context, cartID string, payload []byte) error
	// Subscribe calls fn for every payload published on cartID until the
	// returned cancel is called. fn must not block.
	Subscribe(ctx context.Context, cartID string, fn func(payload []byte)) (cancel func(), err error)
	// Ping checks that the bus answers.
	Ping(ctx context.Context) error
	Close() error
}
