//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes the data folder for this process: one server per
// SQLite file, since servers on one file would not see each other's
// updates (their cache and fan-out are in-process). The lock goes with the
// process, however it ends.
func lockDataDir(dir string) (io.Closer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "cartsync.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data folder %s is in use by another cartsync server: run one server per folder, or several on Postgres and Redis", dir)
		}
		return nil, fmt.Errorf("data folder %s: lock: %w", dir, err)
	}
	return f, nil
}
