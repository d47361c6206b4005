// Package syncserver is the cartsync sync server: it reconciles clients'
// operations into the authoritative cart, acknowledges them once durable and
// pushes the result to every other connection on the same cart, on this
// instance and (through the Bus) on every other.
//
// It speaks the protocol of github.com/cartsync/cartsync/shared/protocol over a websocket at
// /v1/sync and offers the same operations as plain HTTP JSON endpoints under
// /v1/ for native apps that prefer request and response. Storage and fan-out
// are behind the small Store and Bus interfaces declared here; the adapters
// live in syncserver/sqlite, syncserver/postgres and syncserver/redis.
package syncserver
