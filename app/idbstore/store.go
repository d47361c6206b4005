//go:build js && wasm

package idbstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall/js"

	"github.com/hack-pad/go-indexeddb/idb"

	"github.com/cartsync/cartsync/shared/syncclient"
)

// The schema; doc.go describes it. A later version adds its steps to
// upgrade, each guarded by the old version.
const (
	schemaVersion = 1

	storeMeta = "meta"
	storeSeqs = "seqs"
	storeOps  = "ops"

	keyToken = "deviceToken"
	keyCart  = "cart"
)

// ErrUnavailable is returned by Open and Delete when the browser offers no
// usable IndexedDB. The widget can fall back to syncclient.MemStorage.
var ErrUnavailable = errors.New("idbstore: IndexedDB is not available")

// ErrClosed is returned by the methods of a Store after Close.
var ErrClosed = errors.New("idbstore: store is closed")

// Store is a syncclient.Storage in an IndexedDB database, safe for
// concurrent use. Its methods block until IndexedDB answers, so call them
// from a goroutine, never directly from a JavaScript callback.
type Store struct {
	name string

	mu sync.Mutex    // guards db; held while reopening
	db *idb.Database // nil after Close

	// order is the highest outbox order this Store has read (Load) or
	// given (Enqueue): an op it stores next comes after every op its
	// engine can have seen, which is the order the outbox must keep.
	order atomic.Uint64
}

var _ syncclient.Storage = (*Store)(nil)

// Open opens the database name, creating or upgrading it.
func Open(ctx context.Context, name string) (*Store, error) {
	db, err := open(ctx, name)
	if err != nil {
		return nil, err
	}
	return &Store{name: name, db: db}, nil
}

// Close closes the connection; transactions in flight still complete.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// Delete deletes the database name. Open connections to it in this page
// are closed first; a Store using one reopens a new, empty database.
func Delete(ctx context.Context, name string) error {
	f, err := factory()
	if err != nil {
		return fmt.Errorf("delete database %s: %w", name, err)
	}
	req, err := f.DeleteDatabase(name)
	if err == nil {
		err = req.Await(ctx)
	}
	if err == nil {
		err = ctx.Err() // idb answers nil when ctx ends first
	}
	if err != nil {
		return fmt.Errorf("delete database %s: %w", name, err)
	}
	return nil
}

func open(ctx context.Context, name string) (*idb.Database, error) {
	f, err := factory()
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	req, err := f.Open(ctx, name, schemaVersion, upgrade)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, unavailable(err))
	}
	db, err := req.Await(ctx)
	if err == nil && ctx.Err() != nil {
		// idb answers nil when ctx ends first; the connection may still open.
		discard(req)
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, unavailable(err))
	}
	return db, nil
}

// upgrade runs inside the versionchange transaction: it creates stores and
// must not wait for anything.
func upgrade(db *idb.Database, oldVersion, _ uint) error {
	if oldVersion < 1 {
		for _, name := range []string{storeMeta, storeSeqs, storeOps} {
			if _, err := db.CreateObjectStore(name, idb.ObjectStoreOptions{}); err != nil {
				return err
			}
		}
	}
	return nil
}

// discard closes the connection an abandoned open request yields, so that
// it cannot block a later upgrade or Delete.
func discard(req *idb.OpenDBRequest) {
	if state, _ := req.ReadyState(); state == "done" {
		if db, err := req.Result(); err == nil {
			_ = db.Close()
		}
		return
	}
	go func() {
		if db, err := req.Await(context.Background()); err == nil {
			_ = db.Close()
		}
	}()
}

// factory returns the page's IDBFactory, or ErrUnavailable.
func factory() (*idb.Factory, error) {
	v, err := property(js.Global(), "indexedDB")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if !v.Truthy() {
		return nil, ErrUnavailable
	}
	return idb.WrapFactory(v)
}

// unavailable marks the errors with which browsers refuse IndexedDB as a
// whole: SecurityError (opaque origins, storage disabled) and
// InvalidStateError (older Firefox private windows).
func unavailable(err error) error {
	for _, name := range []string{"SecurityError", "InvalidStateError"} {
		if isDOMException(err, name) {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	return err
}

// property reads v[name] through Reflect.get, so that a getter that throws
// becomes an error rather than a crash of the program.
func property(v js.Value, name string) (js.Value, error) {
	var out js.Value
	err := try(func() { out = js.Global().Get("Reflect").Call("get", v, name) })
	return out, err
}

// try calls fn and returns the JavaScript exception it raised, if any.
func try(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			jsErr, ok := r.(js.Error)
			if !ok {
				panic(r)
			}
			err = jsErr
		}
	}()
	fn()
	return nil
}

// run calls fn, which runs one transaction, with the connection. If fn
// fails because the connection was lost, and running it again is safe, run
// reopens the database once and calls fn again.
func (s *Store) run(ctx context.Context, fn func(*idb.Database) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	db := s.db
	s.mu.Unlock()
	if db == nil {
		return ErrClosed
	}
	err := fn(db)
	if !connectionLost(err) {
		return err
	}
	db, rerr := s.reopen(ctx, db)
	if rerr != nil {
		return fmt.Errorf("%w (reopening after: %v)", rerr, err)
	}
	return fn(db)
}

// reopen replaces the lost connection, unless another call did already.
func (s *Store) reopen(ctx context.Context, lost *idb.Database) (*idb.Database, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.db == nil {
		return nil, ErrClosed
	}
	if s.db != lost {
		return s.db, nil
	}
	_ = lost.Close()
	db, err := open(ctx, s.name)
	if err != nil {
		return nil, err
	}
	s.db = db
	return db, nil
}

// notStarted wraps the error of a transaction that could not begin.
type notStarted struct{ err error }

func (e notStarted) Error() string { return "begin transaction: " + e.err.Error() }
func (e notStarted) Unwrap() error { return e.err }

// maybeWritten wraps an error that came after writes were requested: the
// transaction may have committed, so the method must not run again.
type maybeWritten struct{ err error }

func (e maybeWritten) Error() string { return e.err.Error() }
func (e maybeWritten) Unwrap() error { return e.err }

// connectionLost reports whether err means the connection is gone and the
// method may run again on a new one: WebKit's UnknownError ("Connection to
// Indexed Database server lost"), or InvalidStateError from transaction()
// on a connection the browser closed.
func connectionLost(err error) bool {
	if err == nil || errors.As(err, new(maybeWritten)) {
		return false
	}
	if isDOMException(err, "UnknownError") {
		return true
	}
	var ns notStarted
	return errors.As(err, &ns) && isDOMException(ns.err, "InvalidStateError")
}

// isDOMException reports whether err carries a DOMException named name,
// as idb reports one from an event (idb.DOMException) or as a call threw it
// (js.Error).
func isDOMException(err error, name string) bool {
	if errors.Is(err, idb.NewDOMException(name)) {
		return true
	}
	var jsErr js.Error
	if !errors.As(err, &jsErr) || jsErr.Value.Type() != js.TypeObject {
		return false
	}
	v, err := property(jsErr.Value, "name")
	return err == nil && v.Type() == js.TypeString && v.String() == name
}

// begin starts a transaction and returns it with its object stores, in the
// order named.
func begin(db *idb.Database, mode idb.TransactionMode, names ...string) (*idb.Transaction, []*idb.ObjectStore, error) {
	txn, err := db.Transaction(mode, names[0], names[1:]...)
	if err != nil {
		return nil, nil, notStarted{err}
	}
	stores := make([]*idb.ObjectStore, len(names))
	for i, name := range names {
		if stores[i], err = txn.ObjectStore(name); err != nil {
			abort(txn)
			return nil, nil, err
		}
	}
	return txn, stores, nil
}

// get reads key from st and waits for the value, undefined for a missing
// key. On failure it aborts the transaction.
func get(ctx context.Context, txn *idb.Transaction, st *idb.ObjectStore, key string) (js.Value, error) {
	req, err := st.Get(js.ValueOf(key))
	if err != nil {
		abort(txn)
		return js.Value{}, err
	}
	v, err := req.Await(ctx)
	if err == nil {
		err = ctx.Err() // idb answers nil when ctx ends first
	}
	if err != nil {
		abort(txn)
		return js.Value{}, err
	}
	return v, nil
}

// getString is get for a string value; a missing key reads as "".
func getString(ctx context.Context, txn *idb.Transaction, st *idb.ObjectStore, key string) (string, error) {
	v, err := get(ctx, txn, st, key)
	switch {
	case err != nil:
		return "", err
	case v.Type() == js.TypeUndefined:
		return "", nil
	case v.Type() != js.TypeString:
		abort(txn)
		return "", fmt.Errorf("key %q holds a %s, want a string", key, v.Type())
	}
	return v.String(), nil
}

// commit waits until txn has committed. When ctx ends first it aborts txn
// if it still can.
func commit(ctx context.Context, txn *idb.Transaction) error {
	err := txn.Await(ctx)
	if err != nil && ctx.Err() != nil {
		abort(txn)
	}
	return err
}

// abort aborts txn. A transaction that has finished refuses, which is fine.
func abort(txn *idb.Transaction) { _ = txn.Abort() }
