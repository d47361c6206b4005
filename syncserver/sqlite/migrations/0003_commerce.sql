-- The storefront's catalog, the outbox of cart events, and the mark of a
-- cart's abandonment. Times are Unix milliseconds.

-- A cart's Meta.AbandonedAt: the updated_at for which a cart.abandoned
-- event was written (or the cart found not to need one). NULL for none.
ALTER TABLE carts ADD COLUMN abandoned_at INTEGER;

CREATE TABLE catalog_items (
	sku        TEXT PRIMARY KEY CHECK (sku <> ''),
	item       TEXT NOT NULL, -- JSON of cart.Item, without updated_at
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- The outbox. seq is the feed's order: writes are serialized, so seqs are
-- assigned in commit order, and AUTOINCREMENT never hands one out twice.
CREATE TABLE events (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	id           TEXT NOT NULL UNIQUE,
	type         TEXT NOT NULL,
	cart_id      TEXT NOT NULL,
	at           INTEGER NOT NULL,
	data         TEXT NOT NULL, -- JSON
	state        TEXT NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'delivered', 'dead', 'coalesced')),
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_at      INTEGER NOT NULL,
	lease_until  INTEGER, -- NULL: never leased, or the lease ended
	last_error   TEXT NOT NULL DEFAULT '',
	delivered_at INTEGER
);

-- ClaimEvents looks for due pending events in seq order, each the first
-- pending one of its cart; a coalescing event looks for its cart's pending
-- ones. Only pending events are in these indexes.
CREATE INDEX events_pending_seq ON events (seq) WHERE state = 'pending';
CREATE INDEX events_pending_cart ON events (cart_id, seq) WHERE state = 'pending';
CREATE INDEX events_pending_due ON events (next_at) WHERE state = 'pending';
-- DeadEvents. (The feed reads in seq order, the table's rowid, and needs
-- no index.)
CREATE INDEX events_dead ON events (seq) WHERE state = 'dead';
