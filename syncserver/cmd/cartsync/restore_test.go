package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// A database restored from a backup older than edits it had acknowledged
// (docs/operations.md, "Backups"): the device's edits made after the
// restored ones and not sent yet are not lost. The server expects a seq
// of the device's client id that the device no longer has, and would
// refuse every later op of that id; the device sends them again under a
// new client id. What was acknowledged after the backup is gone with the
// restore, as the operator chose. The engines here share one client id,
// as a tab left open through the restore, or an app that keeps its id.
func TestUnsentEditsSurviveARestoredBackup(t *testing.T) {
	dir := t.TempDir()
	backup := t.TempDir()
	ctx := context.Background()
	details := func(name string) *cart.Details { return &cart.Details{Name: name, Price: 500, Currency: "EUR"} }
	st := syncclient.NewMemStorage()

	backedUpMug(t, dir, backup, st, details("Mug"))

	// After the backup: one edit acknowledged, two made offline.
	m := startMain(t, "-data", dir)
	e, stop := runEngine(t, m.URL(), st)
	if err := e.Add(ctx, "TEA", nil, 1, details("Tea")); err != nil {
		t.Fatal(err)
	}
	flushEngine(t, e)
	stop()
	for _, sku := range []string{"CAP", "JAM"} {
		if err := e.Add(ctx, sku, nil, 1, details(sku)); err != nil {
			t.Fatal(err)
		}
	}
	closeMain(t, m)

	restoreData(t, backup, dir)

	m = startMain(t, "-data", dir)
	e, _ = runEngine(t, m.URL(), st)
	s := waitFor(t, e, "the offline edits on the restored cart", func(s syncclient.State) bool {
		return s.Status == syncclient.Synced && s.Pending == 0 && quantity(s.Cart, "CAP") == 1 && quantity(s.Cart, "JAM") == 1
	})
	if len(s.Rejected) != 0 || len(s.Dropped) != 0 {
		t.Errorf("rejected %+v, dropped %+v; want every unsent edit taken", s.Rejected, s.Dropped)
	}
	if quantity(s.Cart, "MUG") != 1 || quantity(s.Cart, "TEA") != 0 || len(s.Cart.Lines) != 3 {
		t.Errorf("cart %+v, want MUG, CAP and JAM: the backup's line and the unsent ones", s.Cart.Lines)
	}
	// What the server has, as another engine on the device reads it.
	other, _ := runEngine(t, m.URL(), st)
	o := waitFor(t, other, "the cart from the server", func(s syncclient.State) bool {
		return s.Status == syncclient.Synced && s.Confirmed == e.Snapshot().Confirmed
	})
	if quantity(o.Cart, "CAP") != 1 || quantity(o.Cart, "JAM") != 1 || quantity(o.Cart, "MUG") != 1 || len(o.Cart.Lines) != 3 {
		t.Errorf("the server's cart %+v, want MUG, CAP and JAM", o.Cart.Lines)
	}
}

// runEngine runs an engine on st against base, with client id device-1,
// until stop is called or the test ends.
func runEngine(t *testing.T, base string, st syncclient.Storage) (*syncclient.Engine, func()) {
	t.Helper()
	e, err := syncclient.New(syncclient.Config{
		Storage: st, Dial: syncclient.WebsocketDialer(wsURL(base)), ClientID: "device-1",
		BackoffBase: 10 * time.Millisecond, BackoffCap: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return e, stop
}

// closeMain stops m as SIGTERM does.
func closeMain(t *testing.T, m *Main) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// copyFiles copies the named files that exist from one folder to another.
func copyFiles(t *testing.T, from, to string, names ...string) {
	t.Helper()
	for _, name := range names {
		src, err := os.Open(filepath.Join(from, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, name))
		if err == nil {
			_, err = io.Copy(dst, src)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
		}
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A device that confirmed versions the restored database no longer has
// is told so at its next hello, and shows the server's cart: it went on
// showing its own copy, and took the same version numbers, made again by
// later edits, for other carts (a checkout at "its" version then held
// other lines than it showed).
func TestRestoredBackupReplacesTheDevicesNewerCopy(t *testing.T) {
	dir := t.TempDir()
	backup := t.TempDir()
	ctx := context.Background()
	st := syncclient.NewMemStorage()
	backedUpMug(t, dir, backup, st, nil)

	m := startMain(t, "-data", dir)
	e, stop := runEngine(t, m.URL(), st)
	for _, sku := range []string{"TEA", "CUP"} {
		if err := e.Add(ctx, sku, nil, 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	flushEngine(t, e)
	if s := e.Snapshot(); s.Confirmed != 3 {
		t.Fatalf("before the restore: v%d, want v3", s.Confirmed)
	}
	stop()
	closeMain(t, m)
	restoreData(t, backup, dir)

	m = startMain(t, "-data", dir)
	e, _ = runEngine(t, m.URL(), st)
	s := waitFor(t, e, "the restored cart shown", func(s syncclient.State) bool {
		return s.Status == syncclient.Synced && s.Confirmed == 1
	})
	if quantity(s.Cart, "MUG") != 1 || len(s.Cart.Lines) != 1 {
		t.Errorf("after the restore: v%d %+v, want the backup's cart, the mug alone", s.Confirmed, s.Cart.Lines)
	}
	// The next edit's version is the server's, and so is the cart.
	if err := e.Add(ctx, "PEN", nil, 1, nil); err != nil {
		t.Fatal(err)
	}
	s = waitFor(t, e, "the pen synced", func(s syncclient.State) bool { return s.Status == syncclient.Synced && s.Pending == 0 })
	if s.Confirmed != 2 || quantity(s.Cart, "PEN") != 1 || quantity(s.Cart, "TEA") != 0 || len(s.Cart.Lines) != 2 {
		t.Errorf("after an edit: v%d %+v, want v2 with the mug and the pen", s.Confirmed, s.Cart.Lines)
	}
}

// backedUpMug runs the server on the data folder dir, gives st a device
// token, adds a mug (with details d) and has it acknowledged, stops the
// server and backs its SQLite files up into backup.
func backedUpMug(t *testing.T, dir, backup string, st syncclient.Storage, d *cart.Details) {
	t.Helper()
	ctx := context.Background()
	m := startMain(t, "-data", dir)
	if _, err := st.SwapDeviceToken(ctx, "", newDevice(t, m.URL())); err != nil {
		t.Fatal(err)
	}
	e, stop := runEngine(t, m.URL(), st)
	if err := e.Add(ctx, "MUG", nil, 1, d); err != nil {
		t.Fatal(err)
	}
	flushEngine(t, e)
	stop()
	closeMain(t, m)
	copyFiles(t, dir, backup, dbFiles...)
}

// dbFiles are the SQLite store's files in the data folder.
var dbFiles = []string{"cartsync.db", "cartsync.db-wal", "cartsync.db-shm"}

// restoreData restores the SQLite store backed up in backup into the data
// folder dir, as docs/operations.md says: the write-ahead log of the
// replaced file deleted, the backup copied in.
func restoreData(t *testing.T, backup, dir string) {
	t.Helper()
	for _, name := range dbFiles {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	copyFiles(t, backup, dir, dbFiles...)
}

// flushEngine waits until e's outbox is sent and acknowledged.
func flushEngine(t *testing.T, e *syncclient.Engine) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}
