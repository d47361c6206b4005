package widget

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// This file holds the pure parts of the bridge of docs/embedding.md: which
// host to trust, what a request asks, and the messages the widget posts.
// The JavaScript side of it is in client.go.

// bridgeVersion is the value of the cartsync field of every message.
const bridgeVersion = 1

// Error codes of the bridge, besides the cart rejection codes.
const (
	codeBadRequest    = "bad_request"
	codeUnknownMethod = "unknown_method"
	codeNotSupported  = "not_supported"
	// codeInternal is a failure of the widget itself, such as local
	// storage that cannot be written.
	codeInternal = "internal"
	// codeSuperseded: a later login or logout replaced this one before
	// the server answered it.
	codeSuperseded = "superseded"
)

// Bridge methods.
const (
	methodAdd         = "add"
	methodSetQuantity = "setQuantity"
	methodRemove      = "remove"
	methodClear       = "clear"
	methodCart        = "cart"
	methodOpen        = "open"
	methodClose       = "close"
	methodTheme       = "theme"
	methodLogin       = "login"
	methodLogout      = "logout"
)

// Bridge events.
const (
	eventReady    = "ready"
	eventChange   = "change"
	eventSync     = "sync"
	eventResize   = "resize"
	eventCheckout = "checkout"
	eventMerge    = "merge"
	eventRejected = "rejected"
	eventReduced  = "reduced"
	eventExpired  = "expired"
)

// statusLogin is the status of the sync event and of CART while the user
// token was refused (expired): edits are kept, and sync resumes after the
// host page calls login again.
const statusLogin = "login"

// maxTokenBytes bounds the user token login takes (the server looks at no
// more).
const maxTokenBytes = 8 << 10

// envAllowedOrigins is the go-app environment variable listing the
// storefront origins allowed to embed the widget, comma-separated.
const envAllowedOrigins = "CARTSYNC_ALLOWED_ORIGINS"

// bridgeError is an error with a bridge error code.
type bridgeError struct {
	code    string
	message string
}

func (e *bridgeError) Error() string { return "widget: " + e.code + ": " + e.message }

func badRequest(format string, args ...any) *bridgeError {
	return &bridgeError{code: codeBadRequest, message: fmt.Sprintf(format, args...)}
}

// normalizeOrigin returns the serialized origin of s as a browser writes it
// (lower case, no default port), if s is an http(s) origin and nothing more.
func normalizeOrigin(s string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Hostname() == "" || u.User != nil || u.Opaque != "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	switch scheme {
	case "https":
		host = strings.TrimSuffix(host, ":443")
	case "http":
		host = strings.TrimSuffix(host, ":80")
	default:
		return "", false
	}
	return scheme + "://" + host, true
}

// parseOrigins parses the comma-separated allow-list of storefront origins,
// dropping entries that are not plain http(s) origins.
func parseOrigins(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if o, ok := normalizeOrigin(part); ok {
			out = append(out, o)
		}
	}
	return out
}

// allowedHost returns the host origin given in the page's fragment
// ("#host=<encoded origin>") if it is in allowed.
func allowedHost(hash string, allowed []string) (string, bool) {
	q, err := url.ParseQuery(strings.TrimPrefix(hash, "#"))
	if err != nil {
		return "", false
	}
	host, ok := normalizeOrigin(q.Get("host"))
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if originMatches(a, host) {
			return host, true
		}
	}
	return "", false
}

// signedOutHint reports whether the page's fragment says that nobody is
// signed in on the host page ("&signedout=1", from embed.js's
// data-signed-in="false").
func signedOutHint(hash string) bool {
	q, err := url.ParseQuery(strings.TrimPrefix(hash, "#"))
	return err == nil && q.Get("signedout") == "1"
}

// originMatches reports whether the normalized origin host is allowed by
// the normalized pattern: equal, or, for a pattern whose host starts with
// "*.", a subdomain of the rest with the same scheme and port (as the
// server allows the websocket and the framing).
func originMatches(pattern, host string) bool {
	if pattern == host {
		return true
	}
	p, perr := url.Parse(pattern)
	h, herr := url.Parse(host)
	if perr != nil || herr != nil || p.Scheme != h.Scheme || p.Port() != h.Port() {
		return false
	}
	rest, ok := strings.CutPrefix(p.Hostname(), "*.")
	return ok && rest != "" && !strings.Contains(rest, "*") && strings.HasSuffix(h.Hostname(), "."+rest)
}

// request is a request from the host page.
type request struct {
	id     json.Number
	method string
	args   []json.RawMessage
}

// errNotRequest is returned by decodeRequest for a message that is not a
// request (and so cannot be answered).
var errNotRequest = errors.New("widget: not a bridge request")

// decodeRequest decodes a message from the host, the JSON of the posted
// object.
func decodeRequest(b []byte) (request, error) {
	var m struct {
		Cartsync json.RawMessage   `json:"cartsync"`
		ID       json.RawMessage   `json:"id"`
		Method   *string           `json:"method"`
		Args     []json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return request{}, fmt.Errorf("%w: %v", errNotRequest, err)
	}
	version, ok := number(m.Cartsync)
	id, idOK := number(m.ID)
	if !ok || version != "1" || !idOK || m.Method == nil {
		return request{}, errNotRequest
	}
	return request{id: id, method: *m.Method, args: m.Args}, nil
}

// cartData is CART of docs/embedding.md.
type cartData struct {
	// ID is the cart's id on the server ("" until the device has synced
	// once): a storefront backend finds the authoritative cart with it.
	ID      string     `json:"id"`
	Lines   []lineData `json:"lines"`
	Items   int        `json:"items"`
	Version uint64     `json:"version"`
	Synced  bool       `json:"synced"`
	Pending int        `json:"pending"`
	Status  string     `json:"status"`
}

type lineData struct {
	Key      string            `json:"key"`
	SKU      string            `json:"sku"`
	Options  map[string]string `json:"options"`
	Quantity int               `json:"quantity"`
	Details  detailsData       `json:"details"`
}

type detailsData struct {
	Name     string `json:"name"`
	Image    string `json:"image"`
	Price    int64  `json:"price"`
	Currency string `json:"currency"`
}

// unsent is the number of edits of the shown cart waiting to be sent: the
// pending ones but those held for another cart (a signed-out user's, sent
// at that user's next login).
func unsent(st syncclient.State) int { return max(0, st.Pending-st.Waiting) }

// statusOf is the status the host sees: the engine's, or login while the
// user token is refused.
func statusOf(st syncclient.State) string {
	if st.NeedsLogin {
		return statusLogin
	}
	return st.Status.String()
}

// cartOf returns the CART the host sees for an engine state.
func cartOf(st syncclient.State) cartData {
	n := unsent(st)
	out := cartData{
		Lines:   []lineData{},
		Version: st.Confirmed,
		Synced:  n == 0,
		Pending: n,
		Status:  statusOf(st),
	}
	if st.Cart == nil {
		return out
	}
	out.ID = st.Cart.ID
	for _, l := range st.Cart.Lines {
		opts := make(map[string]string, len(l.Options))
		for k, v := range l.Options {
			opts[k] = v
		}
		out.Lines = append(out.Lines, lineData{
			Key: l.Key, SKU: l.SKU, Options: opts, Quantity: l.Quantity,
			Details: detailsData{Name: l.Details.Name, Image: l.Details.Image, Price: l.Details.Price, Currency: l.Details.Currency},
		})
	}
	out.Items = st.Cart.Items()
	return out
}

// syncData is the data of the sync event.
type syncData struct {
	Status  string `json:"status"`
	Pending int    `json:"pending"`
	Version uint64 `json:"version"`
}

// sizeData is the data of the resize event, in CSS pixels.
type sizeData struct {
	Width  int  `json:"width"`
	Height int  `json:"height"`
	Open   bool `json:"open"`
}

// expiredData is the data of the expired event: why the device was handed
// a new cart, "erased" (the storefront had the user forgotten) or
// "expired".
type expiredData struct {
	Reason string `json:"reason"`
}

// expiredReason is expiredData's reason for st.
func expiredReason(st syncclient.State) string {
	if st.CartErased {
		return "erased"
	}
	return "expired"
}

// checkoutData is the data of the checkout event.
type checkoutData struct {
	Cart    cartData `json:"cart"`
	Version uint64   `json:"version"`
	// CheckoutID is the server's checkout of the cart at Version: the
	// storefront's backend reads, completes or cancels it.
	CheckoutID string `json:"checkout_id"`
}

// mergeData is the data of the merge event: what a login did with this
// device's cart (status merged), that it did nothing new (already), or that
// the shopper is asked to choose (choose).
type mergeData struct {
	Status   string `json:"status"`
	Policy   string `json:"policy"`
	Items    int    `json:"items"`
	Added    int    `json:"added"`
	Combined int    `json:"combined"`
	Replaced int    `json:"replaced"`
	// Late are the items this device had added that had not reached the
	// server at the login: they reach the account cart after the merge,
	// whatever the policy, and are not in Items (State.MergeLate).
	Late     int           `json:"late"`
	Warnings []warningData `json:"warnings"`
	Version  uint64        `json:"version"`
}

type warningData struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// mergeOf returns the merge event's data for what the server said, and
// the items added late.
func mergeOf(mi *protocol.MergeInfo, late int) mergeData {
	out := mergeData{Status: mi.Status, Warnings: []warningData{}, Version: mi.Version}
	if mi.Status == protocol.MergeMerged {
		out.Late = late
	}
	if mi.Status == protocol.MergeChoose {
		out.Policy = string(cart.PolicyChoose)
	}
	if r := mi.Result; r != nil {
		out.Policy, out.Items, out.Added, out.Combined, out.Replaced = string(r.Policy), r.Items, r.Added, r.Combined, r.Replaced
		for _, w := range r.Warnings {
			out.Warnings = append(out.Warnings, warningData{Code: string(w.Code), Message: w.Message})
		}
	}
	return out
}

// Statuses of the result of login and logout.
const (
	loginDone   = "done"   // the server answered: the cart shown is the account's (login) or this device's (logout)
	loginQueued = "queued" // no answer yet (offline): it is presented at the next connection, and events follow
)

// loginData is the result of login and logout.
type loginData struct {
	Status string `json:"status"`
	// Merge is what the login merge did (the merge event's data), null
	// when there was nothing to report, while queued, and for logout.
	Merge *mergeData `json:"merge"`
	Cart  cartData   `json:"cart"`
}

// loginOf returns the result of a login or logout the server answered.
func loginOf(r syncclient.LoginResult) loginData {
	out := loginData{Status: loginDone, Cart: cartOf(r.State)}
	if r.Merge != nil {
		m := mergeOf(r.Merge, r.State.MergeLate)
		out.Merge = &m
	}
	return out
}

type replyError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// errorOf maps an error to the bridge's {code, message}.
func errorOf(err error) replyError {
	var ce *cart.Error
	var be *bridgeError
	var pe *protocol.Error
	switch {
	case errors.As(err, &ce):
		return replyError{Code: string(ce.Code), Message: ce.Message}
	case errors.As(err, &be):
		return replyError{Code: be.code, Message: be.message}
	case errors.As(err, &pe):
		// The server's refusal, such as token_expired for a login.
		return replyError{Code: string(pe.Code), Message: pe.Message}
	case errors.Is(err, syncclient.ErrSuperseded):
		return replyError{Code: codeSuperseded, Message: "a later login or logout replaced this one before the cart server answered"}
	}
	return replyError{Code: codeInternal, Message: err.Error()}
}

// encodeReply encodes the reply to request id: result, or err if not nil.
func encodeReply(id json.Number, result any, err error) []byte {
	m := struct {
		Cartsync int         `json:"cartsync"`
		ID       json.Number `json:"id"`
		Result   any         `json:"result,omitempty"`
		Error    *replyError `json:"error,omitempty"`
	}{Cartsync: bridgeVersion, ID: id, Result: result}
	if err != nil {
		re := errorOf(err)
		m.Result, m.Error = nil, &re
	}
	return mustJSON(m)
}

// encodeEvent encodes an event.
func encodeEvent(name string, data any) []byte {
	return mustJSON(struct {
		Cartsync int    `json:"cartsync"`
		Event    string `json:"event"`
		Data     any    `json:"data"`
	}{bridgeVersion, name, data})
}

// mustJSON marshals values made of the types of this file, which cannot
// fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("widget: encode bridge message: %v", err))
	}
	return b
}

// announcer decides which events a new engine state is worth: nothing
// before ready, then change when the cart's content or version changed and
// sync when the status or the number of pending edits did. It is safe for
// concurrent use.
type announcer struct {
	mu      sync.Mutex
	ready   bool
	content string // the lines and version last announced
	sync    syncData
	size    sizeData
	sized   bool
	merge   *protocol.MergeInfo    // the last merge announced
	refused map[protocol.OpID]bool // the refused edits announced, of st.Rejected
	reduced map[protocol.OpID]bool // the reduced edits announced, of st.Reduced
	expired bool                   // st.CartExpired last seen: a notice not acknowledged yet
}

// rejectedData is the data of the rejected event: an edit the cart server
// refused, and why. The cart already shows it undone.
type rejectedData struct {
	SKU     string    `json:"sku"`
	Key     string    `json:"key"`
	Name    string    `json:"name,omitempty"`
	Code    cart.Code `json:"code"`
	Message string    `json:"message"`
	// Limit comes with out_of_stock and stock_clamped (see cart.Error).
	cart.Limit
}

// rejectedEvents returns a rejected event for each edit in st.Rejected not
// announced yet, and a reduced event for each in st.Reduced, named by ops
// where it knows the op.
func (a *announcer) rejectedEvents(st syncclient.State, ops *opIndex) [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ready {
		return nil
	}
	var out [][]byte
	resultEvents := func(event string, rs []protocol.Result, announced map[protocol.OpID]bool) map[protocol.OpID]bool {
		seen := make(map[protocol.OpID]bool, len(rs))
		for _, r := range rs {
			id := protocol.OpID{Client: r.Client, Seq: r.Seq}
			seen[id] = true
			var d rejectedData
			switch {
			case announced[id]:
				continue
			case r.Error != nil:
				d = rejectedData{Code: r.Error.Code, Message: r.Error.Message, Limit: r.Error.Limit}
			case len(r.Warnings) > 0:
				w := r.Warnings[0]
				d = rejectedData{Code: w.Code, Message: w.Message, Limit: w.Limit}
			default:
				continue
			}
			if ref, ok := ops.lookup(id); ok {
				d.SKU, d.Key, d.Name = ref.sku, ref.key, ref.name
			}
			out = append(out, encodeEvent(event, d))
		}
		return seen // the engine keeps the last few only
	}
	a.refused = resultEvents(eventRejected, st.Rejected, a.refused)
	a.reduced = resultEvents(eventReduced, st.Reduced, a.reduced)
	return out
}

// contentKey is what a change event is about: the cart's id (it is learnt
// at the first sync, and changes when the device starts over on a new
// cart), lines and version.
func contentKey(c cartData) string {
	return string(mustJSON(struct {
		ID      string
		Lines   []lineData
		Version uint64
	}{c.ID, c.Lines, c.Version}))
}

func syncOf(c cartData) syncData {
	return syncData{Status: c.Status, Pending: c.Pending, Version: c.Version}
}

// readyEvent returns the ready event for st, once; nil afterwards.
func (a *announcer) readyEvent(st syncclient.State) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ready {
		return nil
	}
	c := cartOf(st)
	a.ready, a.content, a.sync = true, contentKey(c), syncOf(c)
	return encodeEvent(eventReady, c)
}

// stateEvents returns the change and sync events st is worth.
func (a *announcer) stateEvents(st syncclient.State) [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ready {
		return nil
	}
	var out [][]byte
	c := cartOf(st)
	if k := contentKey(c); k != a.content {
		a.content = k
		out = append(out, encodeEvent(eventChange, c))
	}
	if s := syncOf(c); s.Status != a.sync.Status || s.Pending != a.sync.Pending {
		a.sync = s
		out = append(out, encodeEvent(eventSync, s))
	}
	// The engine keeps a merge until the notices are acknowledged: each
	// one the server sends is a new value, announced once, when the cart
	// shown includes it (the server sends the merge before the cart) and
	// the adds sent late are answered (late counts them).
	if mi := st.Merge; mergeShown(st) && mi != a.merge {
		a.merge = mi
		out = append(out, encodeEvent(eventMerge, mergeOf(mi, st.MergeLate)))
	}
	// The server handed over a new cart (the old one expired, or was
	// erased): once per notice, before the change with the new cart,
	// also when both come in one state (a device that was away).
	if st.CartExpired != a.expired {
		a.expired = st.CartExpired
		if st.CartExpired {
			out = append([][]byte{encodeEvent(eventExpired, expiredData{Reason: expiredReason(st)})}, out...)
		}
	}
	return out
}

// resizeEvent returns the resize event for size, or nil before ready or if
// it was the last size announced.
func (a *announcer) resizeEvent(size sizeData) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ready || (a.sized && a.size == size) {
		return nil
	}
	a.size, a.sized = size, true
	return encodeEvent(eventResize, size)
}
