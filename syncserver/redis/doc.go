// Package redis runs the sync server on several instances that share a Redis:
// [Bus] carries cart updates between instances over Redis Pub/Sub, and
// [Cache] keeps committed carts in Redis in front of the durable Store.
//
// It is the only package that imports go-redis; no go-redis type or error
// crosses its boundary. Callers own the *goredis.Client they pass in: Close
// on a Bus or a Cache does not close it.
//
// # Keys and channels
//
// Every name starts with the prefix given to the constructor (for example
// "cartsync:"), so instances of different deployments, or different tests,
// can share one Redis:
//
//	prefix+"cart:"+cartID   Pub/Sub channel of the cart's updates (Bus)
//	prefix+"cart:"+cartID   hash holding the cached cart (Cache)
//
// Channels and keys are separate namespaces in Redis, so the two do not
// collide.
//
// # Delivery
//
// Pub/Sub is at most once. A message published while an instance's
// subscription connection is down is lost for that instance; go-redis
// reconnects and resubscribes on its own, but does not replay. Updates are
// hints: a client that sees a gap between the version it has and the
// version it is sent pulls the missing changes from the Store.
package redis
