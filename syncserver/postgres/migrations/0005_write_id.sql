-- A random stamp of every write of a cart row: a store that keeps a cart
-- decoded in memory (syncserver.CartMemo) uses it only while the row still
-- carries the stamp of its own write. Set by a trigger, so that every
-- writer (another instance, the purge, a hand-made fix) changes it.
ALTER TABLE carts ADD COLUMN write_id bigint NOT NULL DEFAULT 0;

CREATE FUNCTION carts_write_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.write_id := floor(random() * 9007199254740991)::bigint + 1;
	RETURN NEW;
END
$$;

CREATE TRIGGER carts_write_id BEFORE INSERT OR UPDATE ON carts
	FOR EACH ROW EXECUTE FUNCTION carts_write_id();
