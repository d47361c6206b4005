// Package logkey names the attributes of cartsync's structured logs (the
// server's, the client engine's, the widget's), so that every package
// writes the same key for the same thing and a log query for one cart or
// one error finds them all.
package logkey

// Keys of log attributes.
const (
	Addr       = "addr"       // a listen or client address
	Audience   = "audience"   // the required aud of user tokens
	Cart       = "cart"       // a cart id
	Carts      = "carts"      // how many carts
	Channel    = "channel"    // a Redis channel
	Checkout   = "checkout"   // a checkout id
	Client     = "client"     // a client id
	Code       = "code"       // an error code
	Count      = "count"      // how many of something
	Current    = "current"    // the value now, beside the one expected or asked for
	Err        = "err"        // the error
	Event      = "event"      // an event id
	Expected   = "expected"   // the value expected
	Failures   = "failures"   // how many failures in a row
	File       = "file"       // a file path
	Guest      = "guest"      // a guest cart id
	ID         = "id"         // the id of what the message is about
	Issuer     = "issuer"     // the required iss of user tokens
	JWKSURL    = "jwks_url"   // the URL of a JWKS
	Keys       = "keys"       // how many keys
	Kind       = "kind"       // a kind of store, cart or service
	Message    = "message"    // an error message
	Messages   = "messages"   // how many messages
	Migrations = "migrations" // database migrations, by name
	Ops        = "ops"        // operations: how many, or which
	Order      = "order"      // an order id
	Path       = "path"       // a URL path or file path
	Policy     = "policy"     // a login merge policy
	Previous   = "previous"   // the value before a change
	Reason     = "reason"     // why
	RetryIn    = "retry_in"   // when a retry happens
	SKU        = "sku"        // a product SKU
	SKUs       = "skus"       // how many SKUs
	Seq        = "seq"        // an operation's seq
	Status     = "status"     // a status
	Subscribe  = "subscribe"  // true for a subscribe, false for an unsubscribe
	Timeout    = "timeout"    // a time limit
	Type       = "type"       // a message or event type
	URL        = "url"        // a URL
	User       = "user"       // a user id or user cart id
	Version    = "version"    // a cart or program version
	Waited     = "waited"     // how long something was waited for
)
