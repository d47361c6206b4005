package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cartsync/cartsync/shared/cart"
)

// The storefront's catalog (syncserver.CatalogStore): one row per SKU, the
// item as JSON without its UpdatedAt, which has a column of its own.

const sqlUpsertItem = `INSERT INTO catalog_items (sku, item, updated_at) VALUES ($1, $2, $3)
	ON CONFLICT (sku) DO UPDATE SET item = EXCLUDED.item, updated_at = EXCLUDED.updated_at`

// UpsertItems implements syncserver.CatalogStore: one transaction, its
// statements sent in one batch (a few round trips for thousands of
// items). An item with an empty SKU fails the call and nothing is stored.
func (s *Store) UpsertItems(ctx context.Context, items []cart.Item, at time.Time) error {
	at = at.Truncate(time.Millisecond)
	b := &pgx.Batch{}
	for _, it := range items {
		it.UpdatedAt = time.Time{}
		j, err := json.Marshal(it)
		if err != nil {
			return fmt.Errorf("upsert items: encode %q: %w", it.SKU, err)
		}
		b.Queue(sqlUpsertItem, it.SKU, string(j), at)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return withCtx(ctx, fmt.Errorf("upsert items: begin: %w", err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return withCtx(ctx, fmt.Errorf("upsert items: %w", err))
	}
	if err := tx.Commit(ctx); err != nil {
		return withCtx(ctx, fmt.Errorf("upsert items: commit: %w", err))
	}
	return nil
}

// DeleteItems implements syncserver.CatalogStore, in one statement.
func (s *Store) DeleteItems(ctx context.Context, skus []string) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM catalog_items WHERE sku = ANY($1)`, skus)
	if err != nil {
		return 0, withCtx(ctx, fmt.Errorf("delete items: %w", err))
	}
	return int(tag.RowsAffected()), nil
}

// Items implements syncserver.CatalogStore, in one statement.
func (s *Store) Items(ctx context.Context, skus []string) (map[string]cart.Item, error) {
	rows, _ := s.pool.Query(ctx, `SELECT item, updated_at FROM catalog_items WHERE sku = ANY($1)`, skus)
	items, err := collectItems(rows)
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("items: %w", err))
	}
	out := make(map[string]cart.Item, len(items))
	for _, it := range items {
		out[it.SKU] = it
	}
	return out, nil
}

// ListItems implements syncserver.CatalogStore. SKUs are ordered by their
// bytes. A limit below 1 lists nothing.
func (s *Store) ListItems(ctx context.Context, after string, limit int) ([]cart.Item, error) {
	if limit < 1 {
		return nil, ctx.Err()
	}
	rows, _ := s.pool.Query(ctx, `SELECT item, updated_at FROM catalog_items WHERE sku > $1 ORDER BY sku LIMIT $2`, after, limit)
	items, err := collectItems(rows)
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("list items: %w", err))
	}
	return items, nil
}

// collectItems reads rows of (item, updated_at).
func collectItems(rows pgx.Rows) ([]cart.Item, error) {
	var (
		out     []cart.Item
		j       []byte
		updated time.Time
	)
	_, err := pgx.ForEachRow(rows, []any{&j, &updated}, func() error {
		var it cart.Item
		if err := json.Unmarshal(j, &it); err != nil {
			return fmt.Errorf("decode item: %w", err)
		}
		it.UpdatedAt = updated.UTC()
		out = append(out, it)
		return nil
	})
	return out, err
}
