package webui

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/syncserver/webhook"
)

// The demo's webhook receiver: the cart server posts its cart events
// there, signed (package webhook); the demo checks each signature and
// keeps the last deliveries for the webhooks page.

// Bounds of the webhook log.
const (
	// maxWebhooks is how many deliveries are kept, the oldest dropped
	// first.
	maxWebhooks = 200
	// maxWebhookBody bounds a delivery's body.
	maxWebhookBody = 1 << 20
	// maxUnverifiedText bounds what is kept of the type and cart of a
	// delivery whose signature does not check: anyone may post one.
	maxUnverifiedText = 100
)

// receivedWebhook is one delivery, as GET /demo/webhooks.json lists it.
type receivedWebhook struct {
	// ID is the webhook-id header: the event's id.
	ID         string    `json:"id"`
	Type       string    `json:"type,omitempty"`
	CartID     string    `json:"cart_id,omitempty"`
	Timestamp  time.Time `json:"timestamp,omitzero"`
	ReceivedAt time.Time `json:"received_at"`
	// Verified is whether the signature checked; Error says why not.
	Verified bool   `json:"verified"`
	Error    string `json:"error,omitempty"`
	// Duplicate is set on a verified delivery of an event received
	// before: delivery is at least once.
	Duplicate bool `json:"duplicate,omitempty"`
	// Data is the event's data, kept for verified deliveries only.
	Data json.RawMessage `json:"data,omitempty"`
}

// webhookLog keeps the last deliveries, oldest first.
type webhookLog struct {
	mu     sync.Mutex
	events []receivedWebhook
}

func (l *webhookLog) add(ev receivedWebhook) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ev.Verified {
		for _, old := range l.events {
			if old.Verified && old.ID == ev.ID {
				ev.Duplicate = true
				break
			}
		}
	}
	if len(l.events) >= maxWebhooks {
		l.events = append(l.events[:0], l.events[len(l.events)-maxWebhooks+1:]...)
	}
	l.events = append(l.events, ev)
}

// newestFirst returns a copy of the log, newest first.
func (l *webhookLog) newestFirst() []receivedWebhook {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]receivedWebhook, len(l.events))
	for i, ev := range l.events {
		out[len(out)-1-i] = ev
	}
	return out
}

// serveWebhook receives a delivery: 204 when its signature checks, 401
// when not. Either way it is listed.
func (d *demo) serveWebhook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		writeDemoError(w, http.StatusRequestEntityTooLarge, "too_large", "the body is larger than %d bytes", maxWebhookBody)
		return
	}
	now := d.now()
	ev := receivedWebhook{ID: clip(r.Header.Get(webhook.HeaderID)), ReceivedAt: now.UTC()}
	var secrets []string
	if d.cfg.WebhookSecret != "" {
		secrets = []string{d.cfg.WebhookSecret}
	}
	verr := webhook.Verify(secrets, r.Header, body, now, 0)
	var p webhook.Payload
	perr := json.Unmarshal(body, &p)
	ev.Type, ev.CartID, ev.Timestamp = p.Type, p.CartID, p.Timestamp
	switch {
	case verr != nil:
		ev.Type, ev.CartID, ev.Error = clip(ev.Type), clip(ev.CartID), webhookRefusal(verr)
	case perr != nil:
		// Signed, but not a body this demo understands.
		ev.Verified, ev.Error = true, "the body is not an event: "+perr.Error()
	default:
		ev.Verified, ev.Data = true, p.Data
	}
	d.hooks.add(ev)
	if verr != nil {
		d.log.Warn("demo storefront: webhook refused", logkey.ID, ev.ID, logkey.Err, verr)
		writeDemoError(w, http.StatusUnauthorized, "bad_signature", "%s", ev.Error)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// webhookRefusal says why a delivery was refused.
func webhookRefusal(err error) string {
	switch {
	case errors.Is(err, webhook.ErrBadSecret):
		return "the demo has no valid webhook secret (-webhook-secrets)"
	case errors.Is(err, webhook.ErrMissingHeader):
		return "missing webhook-id, webhook-timestamp or webhook-signature"
	case errors.Is(err, webhook.ErrStaleTimestamp):
		return "webhook-timestamp is too far from the demo's clock"
	default:
		return "the signature does not match"
	}
}

// clip cuts s to maxUnverifiedText bytes.
func clip(s string) string {
	if len(s) > maxUnverifiedText {
		return s[:maxUnverifiedText]
	}
	return s
}

// webhookList answers GET /demo/webhooks.json.
type webhookList struct {
	// Verifying is whether the demo has a secret to check deliveries.
	Verifying bool              `json:"verifying"`
	Events    []receivedWebhook `json:"events"`
}

func (d *demo) serveWebhookList(w http.ResponseWriter, r *http.Request) {
	writeDemoJSON(w, http.StatusOK, webhookList{Verifying: d.cfg.WebhookSecret != "", Events: d.hooks.newestFirst()})
}
