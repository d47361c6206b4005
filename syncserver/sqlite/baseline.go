package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Baseline measures the storage's own limit for the benchmark: single-row
// durable inserts per second into a scratch SQLite file in dir, opened as
// Open opens the store (WAL, synchronous FULL, one writer), each insert its
// own committed transaction, for d. It removes the file afterwards.
func Baseline(ctx context.Context, dir string, d time.Duration) (float64, error) {
	f, err := os.MkdirTemp(dir, "cartsync-baseline")
	if err != nil {
		return 0, fmt.Errorf("sqlite: baseline: %w", err)
	}
	defer os.RemoveAll(f)
	db, err := sql.Open("sqlite", filepath.Join(f, "baseline.db")+"?"+url.Values{
		"_txlock":       {"immediate"},
		"_journal_mode": {"WAL"},
		"_synchronous":  {"FULL"},
	}.Encode())
	if err != nil {
		return 0, fmt.Errorf("sqlite: baseline: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE baseline (id INTEGER PRIMARY KEY, cart_id TEXT NOT NULL, payload TEXT NOT NULL, at INTEGER NOT NULL)`); err != nil {
		return 0, fmt.Errorf("sqlite: baseline: %w", err)
	}
	const payload = `{"client":"bench","kind":"add","sku":"SKU-1","quantity":1}`
	n := 0
	start := time.Now()
	for deadline := start.Add(d); time.Now().Before(deadline); n++ {
		if _, err := db.ExecContext(ctx, `INSERT INTO baseline (cart_id, payload, at) VALUES (?, ?, ?)`, fmt.Sprint("cart-", n%64), payload, time.Now().UnixMilli()); err != nil {
			return 0, fmt.Errorf("sqlite: baseline insert: %w", err)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
