-- Carts, their clients' last seqs, their change logs, and server secrets.
-- Tables are created unqualified: they go to the first schema of the
-- connection's search_path.

CREATE TABLE carts (
	id          text PRIMARY KEY,
	kind        text NOT NULL DEFAULT '',
	version     bigint NOT NULL DEFAULT 0,
	state       jsonb, -- cart.Cart with Contribs; NULL only inside the transaction that creates the row
	merged_into text NOT NULL DEFAULT '',
	updated_at  timestamptz,
	created_at  timestamptz NOT NULL DEFAULT now()
);

-- For the retention purge: old guest carts first.
CREATE INDEX carts_kind_updated_at ON carts (kind, updated_at);

CREATE TABLE cart_clients (
	cart_id    text NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
	client_id  text NOT NULL,
	last_seq   bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (cart_id, client_id)
);

CREATE TABLE cart_log (
	cart_id  text NOT NULL REFERENCES carts (id) ON DELETE CASCADE,
	version  bigint NOT NULL,
	op       jsonb NOT NULL, -- cart.Op
	warnings jsonb,          -- []cart.Warning, NULL for none
	at       timestamptz NOT NULL,
	PRIMARY KEY (cart_id, version)
);

CREATE TABLE secrets (
	name       text PRIMARY KEY,
	value      bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
