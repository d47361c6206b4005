-- The storefront's catalog, the outbox of cart events, and the mark of a
-- cart's abandonment.

-- A cart's Meta.AbandonedAt: the updated_at for which a cart.abandoned
-- event was written (or the cart found not to need one). NULL for none.
ALTER TABLE carts ADD COLUMN abandoned_at timestamptz;

-- SKUs compare by their bytes (COLLATE "C"), whatever the database's
-- collation: ListItems pages in the same order on every store.
CREATE TABLE catalog_items (
	sku        text COLLATE "C" PRIMARY KEY CHECK (sku <> ''),
	item       jsonb NOT NULL, -- cart.Item, without updated_at
	updated_at timestamptz NOT NULL
);

-- The outbox. seq is taken when a row is inserted, not when it commits, so
-- the feed orders by the inserting transaction's id (xid) first: it only
-- reads events whose transaction is older than every transaction still
-- running, and no later commit can then sort before them.
CREATE TABLE events (
	seq          bigserial PRIMARY KEY,
	id           text NOT NULL UNIQUE,
	type         text NOT NULL,
	cart_id      text NOT NULL,
	at           timestamptz NOT NULL,
	data         jsonb NOT NULL,
	state        text NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'delivered', 'dead', 'coalesced')),
	attempts     integer NOT NULL DEFAULT 0,
	next_at      timestamptz NOT NULL,
	lease_until  timestamptz, -- NULL: never leased, or the lease ended
	last_error   text NOT NULL DEFAULT '',
	delivered_at timestamptz,
	xid          xid8 NOT NULL DEFAULT pg_current_xact_id()
);

-- ClaimEvents looks for due pending events in seq order, each the first
-- pending one of its cart; a coalescing event looks for its cart's pending
-- ones. Only pending events are in these indexes.
CREATE INDEX events_pending_seq ON events (seq) WHERE state = 'pending';
CREATE INDEX events_pending_cart ON events (cart_id, seq) WHERE state = 'pending';
CREATE INDEX events_pending_due ON events (next_at) WHERE state = 'pending';
-- The feed, in (xid, seq) order.
CREATE INDEX events_feed ON events (xid, seq) WHERE state <> 'coalesced';
-- DeadEvents.
CREATE INDEX events_dead ON events (seq) WHERE state = 'dead';
