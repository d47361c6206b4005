// Package webhook delivers the outbox's cart events (syncserver.EventStore)
// to the storefront's HTTP endpoint, following the Standard Webhooks
// conventions (https://www.standardwebhooks.com/), and verifies such
// deliveries on the receiving side ([Verify]).
//
// # Requests
//
// Each attempt is a POST to the configured URL with these headers:
//
//	Content-Type: application/json
//	webhook-id: the event's ID, the same on every attempt
//	webhook-timestamp: the attempt's time, in unix seconds
//	webhook-signature: v1,<base64 signature> for each secret, space separated
//
// A signature is the HMAC-SHA256, keyed with the secret, of the event ID, the
// timestamp and the body joined by full stops: "{id}.{timestamp}.{body}",
// encoded in standard base64 with padding. While a secret is being rotated,
// both the old and the new secret sign every attempt, so the receiver may
// switch at any time. Secrets are written "whsec_" followed by the base64 of
// the key, as the Standard Webhooks specification presents them; a string
// without that prefix is itself the key. A key has at least 24 bytes.
//
// Receivers check the signature over the body exactly as received, before
// parsing it, and deduplicate on webhook-id: an event may arrive more than
// once.
//
// # Body
//
// The body is a JSON object (see [Payload]) with exactly these members, in
// this order:
//
//	{
//	  "id": "evt_…",                    the event's ID (as webhook-id)
//	  "type": "cart.updated",           the event's type
//	  "timestamp": "2026-01-02T15:04:05.123Z",
//	                                    when the event happened (RFC 3339,
//	                                    UTC), not when it was sent
//	  "cart_id": "…",                   the cart the event is about
//	  "data": {…}                       the event's data, {} if it has none
//	}
//
// # Delivery
//
// A [Deliverer] claims due events from the store with a lease, so that
// several instances share the work without sending an event twice while its
// lease lasts. An answer with a 2xx status delivers the event; any other
// status (redirects are not followed), a timeout or a connection error is a
// failed attempt, retried after an exponential backoff with full jitter until
// the retry window since the first attempt ends, after which the event is
// dead (listed by EventStore.DeadEvents until RetryEvent revives it, with a
// new window from its next attempt).
//
// The store hands out only the oldest pending event of each cart, so a
// cart's events reach the receiver in order: the next is not sent until the
// previous one is delivered or dead. Delivery is at least once: an attempt
// the receiver answered but whose answer was lost, or whose recording failed,
// is sent again, with the same webhook-id.
package webhook
