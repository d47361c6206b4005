package webhook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

// The headers of a delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// DefaultTolerance is how far a delivery's timestamp may be from the
// receiver's clock, either way, when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// secretPrefix marks a secret written as the base64 of its key.
const secretPrefix = "whsec_"

// minKeyLen is the shortest key accepted, in bytes (192 bits).
const minKeyLen = 24

// Errors of Verify and Sign. Verify's errors wrap one of them.
var (
	// ErrMissingHeader means webhook-id, webhook-timestamp or
	// webhook-signature is absent or empty.
	ErrMissingHeader = errors.New("webhook: missing webhook header")
	// ErrStaleTimestamp means webhook-timestamp is not unix seconds within
	// the tolerance of the receiver's clock: too old (maybe replayed), in
	// the future, or not a number.
	ErrStaleTimestamp = errors.New("webhook: timestamp outside the tolerance")
	// ErrBadSignature means no v1 signature of webhook-signature matches
	// any of the secrets.
	ErrBadSignature = errors.New("webhook: no matching signature")
	// ErrBadSecret means a secret is malformed or too short, or there is
	// none. The error never contains the secret.
	ErrBadSecret = errors.New("webhook: bad secret")
)

// Payload is the body of a delivery; receivers may decode it with
// encoding/json after Verify.
type Payload struct {
	// ID is the event's ID, the same as the webhook-id header.
	ID string `json:"id"`
	// Type is the event's type, such as syncserver.EventCartUpdated.
	Type string `json:"type"`
	// Timestamp is when the event happened.
	Timestamp time.Time `json:"timestamp"`
	// CartID is the cart the event is about.
	CartID string `json:"cart_id"`
	// Data is the event's data, a JSON object.
	Data json.RawMessage `json:"data"`
}

// Body returns the body delivered for ev (see the package documentation);
// empty or null data is sent as {}. It fails if ev.Data is not valid JSON.
func Body(ev syncserver.Event) ([]byte, error) {
	data := ev.Data
	if t := bytes.TrimSpace(data); len(t) == 0 || string(t) == "null" {
		data = json.RawMessage("{}")
	}
	b, err := json.Marshal(Payload{ID: ev.ID, Type: ev.Type, Timestamp: ev.At.UTC(), CartID: ev.CartID, Data: data})
	if err != nil {
		return nil, fmt.Errorf("webhook: event %s: %w", ev.ID, err)
	}
	return b, nil
}

// Sign returns the webhook-signature header of a message with this id,
// timestamp (of which only the unix seconds count) and body: one
// "v1,<base64>" signature for each secret, space separated.
func Sign(secrets []string, id string, ts time.Time, body []byte) (string, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return "", err
	}
	return sign(keys, id, strconv.FormatInt(ts.Unix(), 10), body), nil
}

// Verify checks a delivery as received: that header has webhook-id,
// webhook-timestamp and webhook-signature, that the timestamp is within
// tolerance of now (DefaultTolerance if tolerance <= 0), and that at least
// one v1 signature is that of one of the secrets over the id, the timestamp
// and body. Signatures are compared in constant time; signatures of other
// schemes (such as v1a) are ignored. body must be the bytes received, before
// any parsing. The error wraps ErrMissingHeader, ErrStaleTimestamp,
// ErrBadSignature or ErrBadSecret.
func Verify(secrets []string, header http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return err
	}
	id, ts, sigs := header.Get(HeaderID), header.Get(HeaderTimestamp), header.Get(HeaderSignature)
	for _, h := range []struct{ name, v string }{{HeaderID, id}, {HeaderTimestamp, ts}, {HeaderSignature, sigs}} {
		if h.v == "" {
			return fmt.Errorf("%w: %s", ErrMissingHeader, h.name)
		}
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not unix seconds", ErrStaleTimestamp, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: %s off the clock", ErrStaleTimestamp, d.Round(time.Second))
	}
	want := make([][]byte, len(keys))
	for i, k := range keys {
		want[i] = mac(k, id, ts, body)
	}
	for s := range strings.FieldsSeq(sigs) {
		enc, ok := strings.CutPrefix(s, "v1,")
		if !ok {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got, w) {
				return nil
			}
		}
	}
	return ErrBadSignature
}

// sign returns the webhook-signature header for the message.
func sign(keys [][]byte, id, ts string, body []byte) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac(k, id, ts, body)))
	}
	return b.String()
}

// mac is the HMAC-SHA256 of "{id}.{ts}.{body}" under key.
func mac(key []byte, id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// parseSecrets returns the keys of secrets: at least one, each of at least
// minKeyLen bytes. Its errors name a secret by its place, never by its text.
func parseSecrets(secrets []string) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secret", ErrBadSecret)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		key := []byte(s)
		if enc, ok := strings.CutPrefix(s, secretPrefix); ok {
			var err error
			key, err = base64.StdEncoding.DecodeString(enc)
			if err != nil {
				// Some write the base64 without padding.
				key, err = base64.RawStdEncoding.DecodeString(enc)
			}
			if err != nil {
				return nil, fmt.Errorf("%w: secret %d: %s is not followed by base64", ErrBadSecret, i+1, secretPrefix)
			}
		}
		if len(key) < minKeyLen {
			return nil, fmt.Errorf("%w: secret %d: a key of %d bytes, less than %d", ErrBadSecret, i+1, len(key), minKeyLen)
		}
		keys[i] = key
	}
	return keys, nil
}
