package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
)

// The storefront's catalog (syncserver.CatalogStore): one row per SKU, the
// item as JSON without its UpdatedAt, which has a column of its own.

// skuChunk is how many SKUs one statement takes in its IN list, well under
// SQLite's bound on a statement's parameters.
const skuChunk = 500

// UpsertItems implements syncserver.CatalogStore: one write transaction,
// one prepared statement run for each item. An item with an empty SKU
// fails the call and nothing is stored.
func (s *Store) UpsertItems(ctx context.Context, items []cart.Item, at time.Time) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("upsert items: begin: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO catalog_items (sku, item, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (sku) DO UPDATE SET item = excluded.item, updated_at = excluded.updated_at`)
	if err != nil {
		return fmt.Errorf("upsert items: prepare: %w", err)
	}
	defer stmt.Close()
	for _, it := range items {
		it.UpdatedAt = time.Time{}
		b, err := json.Marshal(it)
		if err != nil {
			return fmt.Errorf("upsert items: encode %q: %w", it.SKU, err)
		}
		if _, err := stmt.ExecContext(ctx, it.SKU, string(b), at.UnixMilli()); err != nil {
			return fmt.Errorf("upsert items: item %q: %w", it.SKU, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("upsert items: commit: %w", err)
	}
	return nil
}

// DeleteItems implements syncserver.CatalogStore.
func (s *Store) DeleteItems(ctx context.Context, skus []string) (int, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("delete items: begin: %w", err)
	}
	defer tx.Rollback()
	n := 0
	for chunk := range chunks(skus) {
		res, err := tx.ExecContext(ctx, `DELETE FROM catalog_items WHERE sku IN (`+params(len(chunk))+`)`, chunk...)
		if err != nil {
			return 0, fmt.Errorf("delete items: %w", err)
		}
		k, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("delete items: %w", err)
		}
		n += int(k)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("delete items: commit: %w", err)
	}
	return n, nil
}

// Items implements syncserver.CatalogStore. The items are read in one
// read transaction, skuChunk SKUs at a time.
func (s *Store) Items(ctx context.Context, skus []string) (map[string]cart.Item, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("items: begin: %w", err)
	}
	defer tx.Rollback()
	out := make(map[string]cart.Item, len(skus))
	for chunk := range chunks(skus) {
		rows, err := tx.QueryContext(ctx, `SELECT item, updated_at FROM catalog_items WHERE sku IN (`+params(len(chunk))+`)`, chunk...)
		if err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
		items, err := scanItems(rows)
		if err != nil {
			return nil, fmt.Errorf("items: %w", err)
		}
		for _, it := range items {
			out[it.SKU] = it
		}
	}
	return out, nil
}

// ListItems implements syncserver.CatalogStore. SKUs are ordered by their
// bytes. A limit below 1 lists nothing.
func (s *Store) ListItems(ctx context.Context, after string, limit int) ([]cart.Item, error) {
	if limit < 1 {
		return nil, ctx.Err()
	}
	rows, err := s.r.QueryContext(ctx, `SELECT item, updated_at FROM catalog_items WHERE sku > ? ORDER BY sku LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list items: %w", err)
	}
	items, err := scanItems(rows)
	if err != nil {
		return nil, fmt.Errorf("list items: %w", err)
	}
	return items, nil
}

// scanItems reads rows of (item, updated_at) and closes them.
func scanItems(rows *sql.Rows) ([]cart.Item, error) {
	defer rows.Close()
	var out []cart.Item
	for rows.Next() {
		var (
			b       []byte
			updated int64
			it      cart.Item
		)
		if err := rows.Scan(&b, &updated); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &it); err != nil {
			return nil, fmt.Errorf("decode item: %w", err)
		}
		it.UpdatedAt = time.UnixMilli(updated).UTC()
		out = append(out, it)
	}
	return out, rows.Err()
}

// chunks yields skus skuChunk at a time, as statement arguments.
func chunks(skus []string) iter.Seq[[]any] {
	return func(yield func([]any) bool) {
		for len(skus) > 0 {
			n := min(len(skus), skuChunk)
			args := make([]any, n)
			for i, sku := range skus[:n] {
				args[i] = sku
			}
			if !yield(args) {
				return
			}
			skus = skus[n:]
		}
	}
}

// params returns n comma-separated placeholders.
func params(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}
