package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Baseline measures the storage's own limit for the benchmark: single-row
// durable inserts per second into the database at url from conns
// connections, each insert its own committed transaction, for d. It uses a
// scratch table it drops afterwards.
func Baseline(ctx context.Context, url string, conns int, d time.Duration) (float64, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return 0, fmt.Errorf("postgres: parse connection string: %w", err)
	}
	cfg.MaxConns = int32(conns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("postgres: connect: %w", err)
	}
	defer pool.Close()
	const table = "cartsync_bench_baseline"
	if _, err := pool.Exec(ctx, `DROP TABLE IF EXISTS `+table+`;
		CREATE TABLE `+table+` (id bigserial PRIMARY KEY, cart_id text NOT NULL, payload jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return 0, fmt.Errorf("postgres: create baseline table: %w", err)
	}
	defer pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table)
	var n atomic.Int64
	var firstErr error
	var once sync.Once
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := fmt.Sprintf(`{"client":"bench-%d","kind":"add","sku":"SKU-1","quantity":1}`, i)
			for time.Now().Before(deadline) {
				if _, err := pool.Exec(ctx, `INSERT INTO `+table+` (cart_id, payload) VALUES ($1, $2)`, fmt.Sprint("cart-", i), payload); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, fmt.Errorf("postgres: baseline insert: %w", firstErr)
	}
	return float64(n.Load()) / time.Since(start).Seconds(), nil
}
