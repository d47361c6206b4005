-- Carts, their clients' last seqs, their change logs, and server secrets.
-- Times are Unix milliseconds; a NULL updated_at is a zero Meta.UpdatedAt.

CREATE TABLE carts (
	id          TEXT PRIMARY KEY,
	kind        TEXT NOT NULL DEFAULT '',
	version     INTEGER NOT NULL DEFAULT 0,
	state       TEXT NOT NULL, -- JSON of cart.Cart, with Contribs
	merged_into TEXT NOT NULL DEFAULT '',
	updated_at  INTEGER,
	created_at  INTEGER NOT NULL
);

-- For the retention purge: old guest carts first.
CREATE INDEX carts_kind_updated_at ON carts (kind, updated_at);

CREATE TABLE cart_clients (
	cart_id    TEXT NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
	client_id  TEXT NOT NULL,
	last_seq   INTEGER NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (cart_id, client_id)
) WITHOUT ROWID;

CREATE TABLE cart_log (
	cart_id  TEXT NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
	version  INTEGER NOT NULL,
	op       TEXT NOT NULL,     -- JSON of cart.Op
	warnings TEXT,              -- JSON of []cart.Warning, NULL for none
	at       INTEGER NOT NULL,
	PRIMARY KEY (cart_id, version)
) WITHOUT ROWID;

CREATE TABLE secrets (
	name       TEXT PRIMARY KEY,
	value      BLOB NOT NULL,
	created_at INTEGER NOT NULL
) WITHOUT ROWID;
