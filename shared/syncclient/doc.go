// Package syncclient is the client sync engine of cartsync: it keeps the
// shopper's edits in a durable outbox, shows them at once on top of the last
// cart the server confirmed, sends them over the wire protocol of
// github.com/cartsync/cartsync/shared/protocol, and folds the server's answers back in. It
// follows the client algorithm of docs/protocol.md.
//
// It is pure Go and builds both natively (tests, the load generator) and for
// GOOS=js GOARCH=wasm (the browser widget, with an IndexedDB [Storage]).
//
// # State
//
// The engine keeps two things apart, as the protocol wants: the confirmed
// cart (the last snapshot the server sent, with its version) and the pending
// operations (the outbox). What is shown is the confirmed cart with the
// pending operations replayed on it by [cart.Cart.Apply]: speculative, and
// replaced by whatever the server decides.
//
// # Storage
//
// A [Storage] holds the device token, the confirmed cart and the outbox; it
// is the source of truth, and the engine reloads it after every change.
// Several engines (browser tabs) may share one Storage, each with its own
// client id; every engine sends every pending operation, whoever queued it,
// so a closed tab's edits are sent by the next one. Sequence numbers are
// allocated per client id, gap-free, in the transaction that stores the op.
// They count per client id and cart, so an engine moves to a new client id
// when the stored cart changes to another one.
//
// # Flow
//
// [Engine.Run] dials, says hello (with the device token and the confirmed
// version), stores the device token from welcome and takes the snapshot that
// follows, dropping the ops the server says it has. If other client ids have
// pending ops it asks about them with a sync before pushing. Then it pushes
// the outbox in batches, one push in flight at a time, removing each op from
// the outbox once the server has answered for it (applied, duplicate or
// rejected: a rejected op never blocks the ones behind it). Pushed carts from
// the server are taken when they start from the confirmed version; a gap is
// closed with a sync, and so is a long silence about the cart (a lost push
// is otherwise noticed only at the next one). The connection is kept alive
// with protocol pings and dropped when nothing has been heard for 2.5
// heartbeat intervals; it is redialled with full-jitter exponential backoff.
//
// # Inside: a state machine and its driver
//
// The protocol logic is a state machine with no I/O, no goroutine, no
// clock and no lock (machine.go): its inputs are the connection opening
// and ending, server messages, timers firing, local edits stored, logins,
// the shopper's choice and the storage's answers; its outputs are
// messages to send, storage writes and reads, timers to set and the end
// of the connection, plus the state shown. The Engine is its driver: it
// owns the socket, the storage, the clock and the timers, feeds the
// machine under one mutex and carries out what it asks for (run.go).
// Tests drive the machine input by input (machine_test.go); the browser
// widget, the load generator and native apps all run the same machine
// through the Engine.
//
// # Carts and logins (protocol 2)
//
// Every op carries the id of the cart shown when it was made (none before
// the first sync). A connection may send only the ops of its own cart, those
// made before any sync, and, on a user's cart, those made on this device's
// guest cart (the server applies them to the user cart after the login
// merge); the others stay in the outbox, neither shown nor sent, until a
// connection is on their cart again (State.Waiting). [Engine.SetUser] sets
// the user token and merge policy of the next hellos and reconnects: the
// server merges the guest cart into the user's and says how
// (State.Merge), or shows both carts and waits for [Engine.Choose]
// (State.Choice). An expired or refused user token sets State.NeedsLogin:
// the engine does not dial again until SetUser, and edits stay queued for
// the user's cart. A guest cart purged for inactivity comes back as a fresh
// one with a new device token (State.CartExpired); the ops made on the
// purged cart go to the fresh one, as do those of a guest cart whose device
// token was refused or replaced, when the engine knows it was this
// device's guest cart; only a change of one of the old cart's lines, which
// cannot apply without it, is dropped and reported (State.Dropped). A
// user's cart that expired starts over, empty, under the same id
// (State.CartExpired too); the ops made on it are sent to it. When the
// server expects a seq the outbox no longer has (its database was restored
// from an older backup), that client id's later ops are sent again under a
// new client id (Storage.Reissue).
//
// # Catalog and checkout
//
// A server that keeps the storefront's catalog annotates every cart it
// sends with notices (a line's price changed, less of its SKU is
// available, the item was withdrawn) and totals at the catalog's prices;
// when the catalog changes it pushes the cart again at the same version
// (From = Cart.Version, no By). The engine stores the confirmed cart with
// them, takes a cart at the confirmed version as new notices, and shows
// them less those its pending edits resolve (State.Notices,
// State.Totals). [Engine.Checkout] hands the cart at the version the
// shopper reviewed to the storefront's checkout over HTTP (Config.BaseURL);
// the server refuses it with a [CheckoutConflict] when the cart or the
// catalog moved since.
package syncclient
