-- Tombstones: a cart the retention purge expired keeps its row, emptied,
-- with expired_at set (Unix milliseconds); its log and seqs are gone.
-- expired_at is NULL for a live cart.

ALTER TABLE carts ADD COLUMN expired_at INTEGER;

-- The purge looks for old live carts of a kind, then for old tombstones.
DROP INDEX carts_kind_updated_at;
CREATE INDEX carts_live_kind_updated_at ON carts (kind, updated_at) WHERE expired_at IS NULL;
CREATE INDEX carts_kind_expired_at ON carts (kind, expired_at) WHERE expired_at IS NOT NULL;
