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
//	seqs  client id        the last seq allocated to that client, a number
//	      ""               the last outbox order allocated, a number
//	ops   [client id, seq] a pending op, a JSON string (cart.Op with
//	                       "order", its place in the outbox)
//
// Array keys sort by client id, then numerically by seq. seqs keeps its
// counters after the ops are confirmed, so a seq is never reused. The
// outbox is in "order" order: the order Enqueue stored the ops in, across
// the tabs sharing the database, which is the order they reach the
// server in. An op stored before "order" was kept has none and counts as
// 0 (by key among those). Adding the field and the counter needed no new
// schema version. While a tab of an older release is still open beside a
// newer one (until it reloads), its ops carry no order and its Restamp
// drops the order of those it moves: those ops then go first, in client
// id order, as every op did before.
//
// # Transactions
//
// Each Storage method is one IndexedDB transaction: Load is a readonly one
// over meta and ops, SwapDeviceToken a compare-and-swap over meta, Enqueue
// reads and bumps the client's counter and the order counter and puts the
// op (over seqs and ops),
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
