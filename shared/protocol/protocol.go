// Package protocol is the cartsync wire protocol: the messages a client and
// the sync server exchange over a websocket (JSON text frames), the same
// payloads used by the HTTP endpoints, error codes, limits and the protocol
// version.
//
// Protocol flow:
//
// Login: the client opens the websocket at /v1/sync and sends "hello" with
// the protocol version it speaks, its client id (one per tab or process), its
// device token if it has one, and the version of the cart it last confirmed.
// The server answers "welcome" (the device token, issued if the client had
// none, the cart id, the heartbeat interval and the limits), then a "cart"
// message with the current snapshot. Nothing else may be sent before hello.
//
// Steady state: the client sends "push" with a batch of operations in seq
// order per client id. The server answers "ack" after the batch is durable,
// with one result per operation (applied, duplicate or rejected) and the
// cart as of the last one. Every accepted operation advances the cart's
// version by one; the server pushes a "cart" message to every connection on
// the same cart, with the version it starts from and the operations it
// covers. A pushed cart that starts from a version other than the client's
// tells the client it missed something: it sends
// "sync" (since its version, with the client ids it has pending operations
// for) and gets a "cart" with the snapshot and the last seq applied for each
// of those ids. Pushes are hints; sync is the truth.
//
// Keepalive: the client sends "ping" every heartbeat interval and expects
// "pong"; the server closes a connection silent for three intervals.
//
// Errors: an "error" message with a code, a message, whether retrying can
// help and, for overload, how long to wait. A malformed message is answered
// with an error and otherwise ignored; a peer that keeps sending garbage is
// disconnected.
package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/cartsync/cartsync/shared/cart"
)

// Version is the protocol version this build speaks.
//
// History:
//   - 1: hello/welcome, push/ack, cart, sync, ping/pong, error.
//   - 2: user tokens and login merge: hello.user_token and hello.policy,
//     welcome.user and welcome.guest_cart_id, the merge message and the
//     choose message; op.cart; the errors token_expired and cart_expired.
//     A version 1 client never sends a user token and sees none of these.
const Version = 2

// MinVersion is the oldest protocol version the server still accepts. A
// widget cached in a browser keeps running old code until it reloads, so the
// server keeps accepting older versions for at least one release.
const MinVersion = 1

// Limits on messages.
const (
	// MaxMessageBytes is the largest message either side sends or accepts.
	MaxMessageBytes = 256 << 10
	// MaxServerMessageBytes is the largest message the server sends: a
	// cart at its limits with long names and image URLs can be larger than
	// any client message.
	MaxServerMessageBytes = 1 << 20
	// MaxOpsPerPush is the largest batch of operations in one push.
	MaxOpsPerPush = 100
	// MaxClientsPerSync is the most client ids one sync may ask about.
	MaxClientsPerSync = 64
	// HeartbeatMillis is the default interval of client pings.
	HeartbeatMillis = 25_000
)

// Message types.
const (
	TypeHello   = "hello"
	TypeWelcome = "welcome"
	TypePush    = "push"
	TypeAck     = "ack"
	TypeSync    = "sync"
	TypeCart    = "cart"
	TypePing    = "ping"
	TypePong    = "pong"
	TypeError   = "error"
	TypeMerge   = "merge"  // server: what a login merge did, or both carts to choose from
	TypeChoose  = "choose" // client: the shopper's pick for a pending choose
)

// Status of one operation in an ack.
const (
	StatusApplied   = "applied"   // applied now, at Version
	StatusDuplicate = "duplicate" // applied before; this delivery had no effect
	StatusRejected  = "rejected"  // refused with Error; the cart is unchanged
)

// Message is every message of the protocol; Type says which fields are used.
// Unknown fields are ignored, so newer peers may add fields.
type Message struct {
	Type string `json:"type"`
	// ID is an optional request id, echoed in the reply.
	ID string `json:"id,omitempty"`

	// hello: the version the client speaks; welcome: the version the
	// connection runs at (the client's, when the server accepts it).
	Protocol    int    `json:"protocol,omitempty"`
	Client      string `json:"client,omitempty"`
	DeviceToken string `json:"device_token,omitempty"`
	UserToken   string `json:"user_token,omitempty"`
	// hello (with a user token): the login merge policy for this device's
	// guest cart, overriding the server's default; choose: the pick.
	Policy cart.Policy `json:"policy,omitempty"`

	// hello, sync: the version the client has confirmed.
	Since uint64 `json:"since,omitempty"`

	// welcome
	CartID string `json:"cart_id,omitempty"`
	// User is the user id the connection acts for (user carts only).
	User string `json:"user,omitempty"`
	// GuestCartID is the device's guest cart: on a user connection, ops
	// made on it before login (op.cart) are applied to the user cart.
	// Empty when another user's login took that guest cart.
	GuestCartID string `json:"guest_cart_id,omitempty"`
	// PrevCartID and MergedInto (welcome on a guest connection that was
	// handed a new device token): the previous token's guest cart was
	// merged at a login into the user cart MergedInto. Ops still pending
	// on PrevCartID belong to that user cart: a client keeps them and sends
	// them at its next login as that user, never drops them.
	PrevCartID  string       `json:"prev_cart_id,omitempty"`
	MergedInto  string       `json:"merged_into,omitempty"`
	HeartbeatMS int          `json:"heartbeat_ms,omitempty"`
	Limits      *cart.Limits `json:"limits,omitempty"`

	// push
	Ops []cart.Op `json:"ops,omitempty"`

	// ack
	Results []Result `json:"results,omitempty"`

	// ack, cart
	Cart *cart.Cart `json:"cart,omitempty"`
	// cart, when pushed: the operations that produced versions From+1 to
	// Cart.Version, in order. A client whose confirmed version is From can
	// take the snapshot and drop those of its pending operations; any other
	// client with an older version has a gap and must sync.
	From uint64 `json:"from,omitempty"`
	By   []OpID `json:"by,omitempty"`
	// cart (reply to sync or hello): the last seq applied per client id asked about.
	Acked map[string]uint64 `json:"acked,omitempty"`
	// cart (reply to sync or hello): the request's since is past the
	// cart's version in the server's durable store, read again: the store
	// was restored from an older backup. The client replaces its confirmed
	// copy of the cart with this older one (it never takes an older
	// snapshot otherwise). Optional; added in version 2 without a new
	// version.
	Reset bool `json:"reset,omitempty"`

	// sync: client ids with pending operations.
	Clients []string `json:"clients,omitempty"`

	// ping, pong: an opaque value echoed back.
	T int64 `json:"t,omitempty"`

	// error
	Error *Error `json:"error,omitempty"`

	// merge
	Merge *MergeInfo `json:"merge,omitempty"`
}

// Merge statuses.
const (
	MergeMerged  = "merged"  // the guest cart was merged by Result.Policy
	MergeChoose  = "choose"  // nothing changed: the shopper must choose
	MergeAlready = "already" // this guest cart was merged before: no change
)

// MergeInfo tells the client about a login merge.
type MergeInfo struct {
	Status string `json:"status"`
	// Result of a merge (status merged).
	Result *cart.MergeResult `json:"result,omitempty"`
	// Guest and User are both carts, for the shopper to compare (status
	// choose).
	Guest *cart.Cart `json:"guest,omitempty"`
	User  *cart.Cart `json:"user,omitempty"`
	// Version is the user cart's version after the merge.
	Version uint64 `json:"version"`
}

// MergeClient is the client id of a login merge in a pushed cart's by (and
// in a change log): {"client": "server:merge", "seq": <the version it
// produced>}. It is no op of any outbox.
const MergeClient = "server:merge"

// OpID identifies an operation.
type OpID struct {
	Client string `json:"client"`
	Seq    uint64 `json:"seq"`
}

// Result is the outcome of one pushed operation.
type Result struct {
	Client   string         `json:"client"`
	Seq      uint64         `json:"seq"`
	Status   string         `json:"status"`
	Version  uint64         `json:"version"`
	Error    *cart.Error    `json:"error,omitempty"`
	Warnings []cart.Warning `json:"warnings,omitempty"`
}

// ErrorCode is a stable, machine-readable protocol error.
type ErrorCode string

// Protocol error codes.
const (
	ErrMalformed          ErrorCode = "malformed"           // not JSON, or fields of the wrong type
	ErrUnknownType        ErrorCode = "unknown_type"        // a type this server does not know
	ErrTooLarge           ErrorCode = "too_large"           // over MaxMessageBytes or MaxOpsPerPush
	ErrUnsupportedVersion ErrorCode = "unsupported_version" // protocol outside MinVersion..Version
	ErrHelloRequired      ErrorCode = "hello_required"      // a message before hello, or hello twice
	ErrInvalid            ErrorCode = "invalid"             // a well-formed message with bad fields
	ErrUnauthorized       ErrorCode = "unauthorized"        // missing, forged or unknown token
	ErrTokenExpired       ErrorCode = "token_expired"       // the user token expired: log in again
	ErrForbidden          ErrorCode = "forbidden"           // the token does not grant this cart
	ErrCartExpired        ErrorCode = "cart_expired"        // the guest cart expired; a fresh one is issued
	ErrOutOfOrder         ErrorCode = "out_of_order"        // a seq gap: resend from the expected seq
	ErrOverloaded         ErrorCode = "overloaded"          // retry after RetryAfterMS
	ErrGoingAway          ErrorCode = "going_away"          // the server closes the connection: reconnect after RetryAfterMS
	ErrInternal           ErrorCode = "internal"            // a server fault; retry
	ErrRateLimited        ErrorCode = "rate_limited"        // too many connections or requests from one address: retry after RetryAfterMS
	ErrNotFound           ErrorCode = "not_found"           // backend API: no such cart, checkout or event
	ErrCartChanged        ErrorCode = "cart_changed"        // checkout: the cart moved past the reviewed version, or the catalog changed under it
	ErrCheckoutEnded      ErrorCode = "checkout_ended"      // the checkout was completed, cancelled or expired
	ErrCartEmpty          ErrorCode = "cart_empty"          // checkout of an empty cart
	ErrTooManyCheckouts   ErrorCode = "too_many_checkouts"  // the cart has the most open checkouts it keeps
)

// Error is a protocol error as sent on the wire.
type Error struct {
	Code      ErrorCode `json:"code"`
	Message   string    `json:"message"`
	Retryable bool      `json:"retryable"`
	// RetryAfterMS says how long to wait before retrying, when known.
	RetryAfterMS int `json:"retry_after_ms,omitempty"`
	// Expected is the next seq the server expects, with out_of_order.
	Expected *OpID `json:"expected,omitempty"`
	// Cart is the cart the error is about, with cart_expired.
	Cart string `json:"cart,omitempty"`
	// Erased, with cart_expired, says the cart was emptied because the
	// storefront had its user forgotten, not because it expired.
	Erased bool `json:"erased,omitempty"`
	// Token, with unauthorized, says which token was refused: the device
	// token (TokenDevice) or the user token (TokenUser).
	Token string `json:"token,omitempty"`
	// Details names each bad item of a batch (the backend's catalog
	// upload): its index, its SKU and why.
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail is what is wrong with one item of a batch.
type ErrorDetail struct {
	Index   int       `json:"index"`
	SKU     string    `json:"sku,omitempty"`
	Code    cart.Code `json:"code"`
	Message string    `json:"message"`
}

// The tokens an unauthorized error can name (Error.Token).
const (
	TokenDevice = "device"
	TokenUser   = "user"
)

func (e *Error) Error() string { return "protocol: " + string(e.Code) + ": " + e.Message }

// Errorf builds an error with the retryable flag the code implies.
func Errorf(code ErrorCode, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), Retryable: Retryable(code)}
}

// Retryable reports whether sending the same thing again later can succeed.
func Retryable(code ErrorCode) bool {
	switch code {
	case ErrRateLimited:
		return true
	case ErrOutOfOrder, ErrOverloaded, ErrGoingAway, ErrInternal:
		return true
	}
	return false
}

// AsError returns err as a protocol error; anything else is internal.
func AsError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return Errorf(ErrInternal, "internal error")
}

var knownTypes = map[string]bool{
	TypeHello: true, TypeWelcome: true, TypePush: true, TypeAck: true, TypeSync: true,
	TypeCart: true, TypePing: true, TypePong: true, TypeError: true,
	TypeMerge: true, TypeChoose: true,
}

// Decode parses and checks one message. Every failure is a *Error.
//
// A message that is refused but could be read as a JSON object (no type, an
// unknown type, a field of the wrong type, bad fields) is returned with the
// error, as far as it was read: the error must carry its ID, since a peer
// that matches replies by id would otherwise wait for an answer forever.
// Only invalid JSON and oversized data give a nil message.
func Decode(data []byte) (*Message, error) { return decode(data, MaxMessageBytes, true) }

// DecodeServer is Decode for a message the server sent, which may be up to
// MaxServerMessageBytes (a cart at its limits, two at a login choice): what
// a client reads.
// The server is trusted to send each key once, as named: its messages are
// not checked for keys given twice or in other letter case (checkKeys),
// which would cost every client's reading.
func DecodeServer(data []byte) (*Message, error) { return decode(data, MaxServerMessageBytes, false) }

// decode reads a message of up to limit bytes; strict refuses keys given
// twice or in other letter case (checkKeys).
func decode(data []byte, limit int, strict bool) (*Message, error) {
	var m Message
	if !decodeFast(data, &m) {
		m = Message{}
		if err := decodeJSON(data, &m, limit, strict); err != nil {
			if m.Type != "" || m.ID != "" {
				// A field of the wrong type: the rest was read.
				return &m, err
			}
			return nil, err
		}
	}
	if m.Type == "" {
		return &m, Errorf(ErrMalformed, "message has no type")
	}
	if !knownTypes[m.Type] {
		return &m, Errorf(ErrUnknownType, "unknown message type %q", clip(m.Type))
	}
	if err := m.Check(); err != nil {
		return &m, err
	}
	return &m, nil
}

// DecodeOps reads a body of operations, {"ops": [...]} (the sync API's
// POST /v1/cart/ops), as DecodeJSON reads it into a struct of that one
// field: other keys are ignored. Pushes' fast path reads it when it can.
func DecodeOps(data []byte) ([]cart.Op, error) {
	var m Message
	if decodeFast(data, &m) {
		return m.Ops, nil
	}
	var req struct {
		Ops []cart.Op `json:"ops"`
	}
	if err := DecodeJSON(data, &req); err != nil {
		return nil, err
	}
	return req.Ops, nil
}

// DecodeJSON parses one size-limited JSON value into v, as Decode does for
// messages; the HTTP endpoints use it for their bodies. Every failure is a
// *Error.
func DecodeJSON(data []byte, v any) error {
	return DecodeJSONLimit(data, v, MaxMessageBytes)
}

// DecodeJSONLimit is DecodeJSON for bodies of up to limit bytes (the
// backend API's catalog uploads are larger than any message).
func DecodeJSONLimit(data []byte, v any, limit int) error {
	return decodeJSON(data, v, limit, true)
}

func decodeJSON(data []byte, v any, limit int, strict bool) error {
	if len(data) > limit {
		return Errorf(ErrTooLarge, "message of %d bytes exceeds %d", len(data), limit)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return Errorf(ErrMalformed, "not a valid message: %v", describeJSON(err))
	}
	if dec.More() {
		return Errorf(ErrMalformed, "trailing data after the message")
	}
	if !strict {
		return nil
	}
	return checkKeys(data, reflect.TypeOf(v))
}

// Check validates the fields of a message of a known type.
func (m *Message) Check() error {
	switch m.Type {
	case TypeHello:
		if m.Protocol == 0 {
			// Absent (there never was a version 0): a client bug, not
			// a client too old or too new for this server.
			return Errorf(ErrInvalid, "hello needs protocol, the version the client speaks (%d to %d here)", MinVersion, Version)
		}
		if m.Protocol < MinVersion || m.Protocol > Version {
			return &Error{Code: ErrUnsupportedVersion, Message: fmt.Sprintf("protocol %d not supported; this server speaks %d to %d", m.Protocol, MinVersion, Version)}
		}
		if !cart.ValidClientID(m.Client) {
			return Errorf(ErrInvalid, "hello needs a client id of 1 to %d printable bytes", cart.MaxClientID)
		}
		if m.Policy != "" && !m.Policy.Valid() {
			return Errorf(ErrInvalid, "unknown merge policy %q", clip(string(m.Policy)))
		}
		if m.Protocol < 2 && (m.UserToken != "" || m.Policy != "") {
			// A version 1 client could not read what a login answers.
			return Errorf(ErrInvalid, "user_token and policy need protocol 2")
		}
	case TypePush:
		if len(m.Ops) == 0 {
			return Errorf(ErrInvalid, "push without operations")
		}
		if len(m.Ops) > MaxOpsPerPush {
			return Errorf(ErrTooLarge, "push of %d operations exceeds %d", len(m.Ops), MaxOpsPerPush)
		}
		for _, op := range m.Ops {
			if op.Seq > cart.MaxSeq {
				// JSON carries any uint64; stores keep int64.
				return Errorf(ErrInvalid, "op %s/%d: seq must be below 2^63", clip(op.Client), op.Seq)
			}
		}
	case TypeChoose:
		if m.Policy != cart.PolicyMerge && m.Policy != cart.PolicyReplace && m.Policy != cart.PolicyKeep {
			return Errorf(ErrInvalid, "choose takes the policy merge, replace or keep")
		}
	case TypeSync:
		if len(m.Clients) > MaxClientsPerSync {
			return Errorf(ErrTooLarge, "sync names %d clients, at most %d", len(m.Clients), MaxClientsPerSync)
		}
		for _, c := range m.Clients {
			if !cart.ValidClientID(c) {
				return Errorf(ErrInvalid, "client ids must be 1 to %d printable bytes", cart.MaxClientID)
			}
		}
	}
	return nil
}

// Encode marshals a message. It writes <, > and & as they are, not as
// \u003c escapes: a message is never HTML, and the escapes would make a
// cart up to six times larger than Limits.MaxCartBytes counts it.
func Encode(m *Message) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func describeJSON(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	}
	return "invalid JSON"
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}
