-- Locks the carts ids in id order (as every batch locks its carts, so that
-- batches never deadlock) and fails with SQLSTATE CS409 unless each one
-- exists, is not expired and still carries the write_id stamps[i]: the row
-- its caller wrote last and holds in memory (syncserver.CartMemo). A batch
-- that calls it first may write those carts as it decided from memory, and
-- commit, in the same round trip; CS409 aborts the transaction, and the
-- batch runs again on the rows read under lock.
CREATE FUNCTION cartsync_lock_stamped(ids text[], stamps text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	locked int;
BEGIN
	SELECT count(*) INTO locked FROM (
		SELECT c.id FROM carts c JOIN unnest(ids, stamps) AS k(id, stamp) ON c.id = k.id
		WHERE c.write_id::text = k.stamp AND c.expired_at IS NULL AND c.state IS NOT NULL
		ORDER BY c.id FOR UPDATE OF c
	) l;
	IF locked <> cardinality(ids) THEN
		RAISE EXCEPTION 'cartsync: a cart changed since this instance wrote it' USING ERRCODE = 'CS409';
	END IF;
END
$$;
