// Package idbstore is the IndexedDB implementation of syncclient.Storage:
// the widget's device token, last confirmed cart and outbox, kept across
// reloads and shared by the tabs of one site. It builds only for js/wasm;
// on other platforms the package is empty, so refer to it from js/wasm
// files only.
//
// # Schema
//
// Version 1 has three object stores, all with out-of-line keys:
//
//	meta  "deviceToken"    the device token, a string
//	      "cart"           the confirmed cart, a JSON string (cart.Cart)
//	seqs  client id        [the last seq allocated to that client, the
//	                       order of its op] (a number, the seq alone, from
//	                       before ops had an order)
//	ops   [client id, seq] a pending op, a JSON string (cart.Op with
//	                       "order", its place in the outbox)
//
// Array keys sort by client id, then numerically by seq. seqs keeps its
// counter after the ops are confirmed, so a seq is never reused.
//
// The outbox is in "order" order, then by key: the order the ops reach the
// server in. A Store gives each op it stores an order above every order it
// has read or given, and above its client's last one (tabs sharing a client
// id keep its ops in seq order). So an op comes after every op its tab could
// show when it was made (a tab's clear after an add another tab stored and
// this one read), whatever their client ids; ops of tabs that had not read
// each other's are concurrent and may come in either order. This costs no
// request in the transaction. An op stored before ops had an order counts
// as 0 (by key among those); the field needed no new schema version. A tab
// of an older release, until it reloads, stores ops without an order (they
// go first), drops the order of the ops its Restamp moves, and refuses a
// counter of the new form (only for a client id a newer tab used too: each
// tab has its own).
//
// # Transactions
//
// Each Storage method is one IndexedDB transaction: Load is a readonly one
// over meta and ops, SwapDeviceToken a compare-and-swap over meta, Enqueue
// reads and bumps the client's counter and puts the op (over seqs and ops),
// and Confirm puts the cart and deletes the confirmed ops (over meta and
// ops). A method that writes returns once the transaction has committed.
// IndexedDB runs readwrite transactions with overlapping scopes one at a
// time, also across connections, so tabs sharing the database allocate
// seqs without gaps or duplicates.
//
// Inside a transaction the code waits for nothing but IndexedDB requests:
// the browser commits a transaction as soon as the JavaScript event loop
// goes idle. Values are encoded before a transaction begins wherever
// possible.
//
// # Failures
//
// Open returns ErrUnavailable when the browser offers no usable IndexedDB
// (it is undefined in some private modes, and refused in opaque origins);
// the widget can then use syncclient.MemStorage and rely on the server's
// copy of the cart. WebKit can drop the connection of a long-lived page
// ("Connection to Indexed Database server lost", or InvalidStateError from
// transaction()); a method that fails that way reopens the database once
// and runs again. Enqueue runs again only if it failed before writing, so
// an op is never stored twice.
package idbstore
