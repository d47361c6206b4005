package syncserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The backend API: the storefront's own servers working with carts,
// authenticated by API keys (Config.APIKeys). docs/integration.md is the
// guide, docs/openapi.yaml the reference.

// minAPIKey is the shortest API key accepted.
const minAPIKey = 32

// StorefrontDevice is the device the backend's ops are stamped with.
const StorefrontDevice = "storefront"

// Bounds of the backend API.
const (
	// MaxCatalogBatch is the most items one catalog upload may carry.
	MaxCatalogBatch = 5000
	// maxCatalogBody bounds a catalog upload's body.
	maxCatalogBody = 8 << 20
	// maxPage is the largest page of a listing.
	maxPage = 1000
)

func (s *Server) backendRoutes() []route {
	return []route{
		{http.MethodGet, "/v1/backend/carts/{cart}", s.backend(s.serveBackendCart), true},
		{http.MethodPost, "/v1/backend/carts/{cart}/ops", s.backend(s.serveBackendOps), true},
		{http.MethodGet, "/v1/backend/users/{user}/cart", s.backend(s.serveBackendCart), true},
		{http.MethodPost, "/v1/backend/users/{user}/cart/ops", s.backend(s.serveBackendOps), true},
		{http.MethodDelete, "/v1/backend/users/{user}/cart", s.backend(s.serveEraseUser), true},
		{http.MethodPut, "/v1/backend/catalog/items", s.backend(s.serveCatalogUpsert), true},
		{http.MethodGet, "/v1/backend/catalog/items", s.backend(s.serveCatalogList), true},
		{http.MethodPost, "/v1/backend/catalog/items/delete", s.backend(s.serveCatalogDelete), true},
		{http.MethodGet, "/v1/backend/checkouts/{checkout}", s.backend(s.serveCheckoutGet), true},
		{http.MethodPost, "/v1/backend/checkouts/{checkout}/complete", s.backend(s.serveCheckoutComplete), true},
		{http.MethodPost, "/v1/backend/checkouts/{checkout}/cancel", s.backend(s.serveCheckoutCancel), true},
		{http.MethodGet, "/v1/backend/events", s.backend(s.serveEvents), true},
		{http.MethodGet, "/v1/backend/events/dead", s.backend(s.serveDeadEvents), true},
		{http.MethodPost, "/v1/backend/events/{event}/retry", s.backend(s.serveRetryEvent), true},
	}
}

// route is one endpoint.
type route struct {
	method, path string
	h            http.HandlerFunc
	// keyed: the backend's, taken with an API key. A request with a valid
	// key is not held to the per-address request rate: a storefront's
	// servers, one address for a whole shop, would be throttled like one
	// abusive client (guardKeyed).
	keyed bool
}

// backend wraps a backend endpoint: it takes "Authorization: Bearer <API
// key>" and nothing else (a device or user token is not a key).
func (s *Server) backend(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !s.validAPIKey(strings.TrimSpace(tok)) {
			s.httpError(w, protocol.Errorf(protocol.ErrUnauthorized, "the backend API takes Authorization: Bearer <API key>; this key is missing or not valid"))
			return
		}
		next(w, r)
	}
}

// validAPIKey compares key with every configured key in constant time:
// their SHA-256 digests, all of the same length, so that the time taken
// tells nothing of the keys' lengths either.
func (s *Server) validAPIKey(key string) bool {
	sum := sha256.Sum256([]byte(key))
	ok := 0
	for _, k := range s.apiKeys {
		ok |= subtle.ConstantTimeCompare(sum[:], k)
	}
	return ok == 1 && key != ""
}

// cartIDPattern is the form of every cart id.
var cartIDPattern = regexp.MustCompile(`^[gu]_[0-9a-f]{32}$`)

// backendIdentity is who a backend request on a cart acts as: the
// storefront, on the cart named by the path ({cart}, or {user}'s cart).
func (s *Server) backendIdentity(r *http.Request) (Identity, *protocol.Error) {
	id := Identity{Device: StorefrontDevice}
	if user := r.PathValue("user"); user != "" {
		if !protocol.ValidUserID(user) {
			return id, protocol.Errorf(protocol.ErrInvalid, "user id must be printable text of at most 256 bytes, as in the sub of the user's tokens")
		}
		id.User, id.CartID = user, UserCartID(user)
		return id, nil
	}
	id.CartID = r.PathValue("cart")
	if !cartIDPattern.MatchString(id.CartID) {
		return id, protocol.Errorf(protocol.ErrInvalid, "cart id must look like g_ or u_ and 32 hex digits")
	}
	return id, nil
}

// BackendCart answers the backend's cart reads: the cart with its notices
// and totals, and what the server keeps about it.
type BackendCart struct {
	Cart      *cart.Cart       `json:"cart"`
	Kind      string           `json:"kind"`
	User      string           `json:"user,omitempty"`
	UpdatedAt time.Time        `json:"updated_at,omitzero"`
	Checkouts []*cart.Checkout `json:"checkouts,omitempty"`
	// MergedInto is set on a guest cart merged at login into a user cart.
	MergedInto string `json:"merged_into,omitempty"`
	// Acked is the last seq the cart applied of each client id the read
	// named (?clients=a,b; 0 for none): where the storefront's own ops
	// go on from.
	Acked map[string]uint64 `json:"acked,omitempty"`
}

func (s *Server) serveBackendCart(w http.ResponseWriter, r *http.Request) {
	id, perr := s.backendIdentity(r)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	clients, perr := clientsParam(r, protocol.ErrInvalid)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	rec, err := s.freshStore().Load(r.Context(), id.CartID, clients)
	switch {
	case errors.Is(err, ErrCartNotFound):
		s.httpError(w, protocol.Errorf(protocol.ErrNotFound, "no cart %s", id.CartID))
		return
	case err != nil:
		s.httpFail(w, "load the cart", id.CartID, err)
		return
	}
	c := rec.Cart.Public()
	if c.Lines == nil {
		c.Lines = []*cart.Line{}
	}
	s.annotate(r.Context(), c)
	now := s.now()
	resp := BackendCart{Cart: c, Kind: rec.Meta.Kind, User: rec.Cart.User, UpdatedAt: rec.Meta.UpdatedAt, MergedInto: rec.Meta.MergedInto}
	if len(clients) > 0 {
		resp.Acked = make(map[string]uint64, len(clients))
		for _, cl := range clients {
			resp.Acked[cl] = rec.Seqs[cl]
		}
	}
	for _, co := range rec.Cart.Checkouts {
		resp.Checkouts = append(resp.Checkouts, co.Shown(now))
	}
	writeJSON(w, http.StatusOK, resp)
}

// serveBackendOps applies ops as the storefront: like POST /v1/cart/ops,
// with the storefront's own client ids; they reach every connected device.
func (s *Server) serveBackendOps(w http.ResponseWriter, r *http.Request) {
	id, perr := s.backendIdentity(r)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	s.applyOps(w, r, id)
}

// applyOps is the body of the ops endpoints: read the batch, apply it as
// id, publish, answer.
func (s *Server) applyOps(w http.ResponseWriter, r *http.Request, id Identity) {
	body, perr := s.readBody(w, r, protocol.MaxMessageBytes)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	ops, err := protocol.DecodeOps(body)
	if err != nil {
		s.httpError(w, protocol.AsError(err))
		return
	}
	m := &protocol.Message{Type: protocol.TypePush, Ops: ops}
	if err := m.Check(); err != nil {
		s.httpError(w, protocol.AsError(err))
		return
	}
	if id.Device != StorefrontDevice { // the backend's key is not held to a shopper's rate
		if perr := s.ipl.allowEdits(requestAddr(r.Context()), len(m.Ops)); perr != nil {
			s.httpError(w, perr)
			return
		}
	}
	out, err := s.apply(r.Context(), id, m.Ops)
	if err != nil {
		s.httpError(w, protocol.AsError(err))
		return
	}
	s.publish(r.Context(), id.CartID, out)
	status := http.StatusOK
	if out.stop != nil {
		status = http.StatusConflict
	}
	writeJSON(w, status, OpsResponse{Results: out.results, Cart: out.cart, Error: out.stop})
}

// CatalogUpsert is the body of PUT /v1/backend/catalog/items.
type CatalogUpsert struct {
	Items []cart.Item `json:"items"`
}

// CatalogDelete is the body of POST /v1/backend/catalog/items/delete.
type CatalogDelete struct {
	SKUs []string `json:"skus"`
}

// CatalogResult answers a catalog upload or delete.
type CatalogResult struct {
	Upserted int `json:"upserted,omitempty"`
	Deleted  int `json:"deleted,omitempty"`
}

// CatalogPage answers GET /v1/backend/catalog/items.
type CatalogPage struct {
	Items []cart.Item `json:"items"`
	// Next is the after= of the next page; empty on the last.
	Next string `json:"next,omitempty"`
}

func (s *Server) catalogStore(w http.ResponseWriter) CatalogStore {
	if s.catalog.store == nil {
		s.httpError(w, protocol.Errorf(protocol.ErrInvalid, "this server's store keeps no catalog"))
	}
	return s.catalog.store
}

// catalogRequest reads a catalog upload or delete into req and checks that
// it carries 1 to MaxCatalogBatch entries (count); what and noun name them
// in errors. It answers the request and returns nil when it cannot go on.
func (s *Server) catalogRequest(w http.ResponseWriter, r *http.Request, req any, count func() int, what, noun string) CatalogStore {
	cs := s.catalogStore(w)
	if cs == nil {
		return nil
	}
	body, perr := s.readBody(w, r, maxCatalogBody)
	if perr != nil {
		s.httpError(w, perr)
		return nil
	}
	if err := protocol.DecodeJSONLimit(body, req, maxCatalogBody); err != nil {
		s.httpError(w, protocol.AsError(err))
		return nil
	}
	switch n := count(); {
	case n == 0:
		s.httpError(w, protocol.Errorf(protocol.ErrInvalid, "%s carries at least one %s", what, noun))
		return nil
	case n > MaxCatalogBatch:
		s.httpError(w, protocol.Errorf(protocol.ErrTooLarge, "%s carries at most %d %ss, got %d", what, MaxCatalogBatch, noun, n))
		return nil
	}
	return cs
}

// upsertedItem is an item of a catalog upload as sent: sellable must be
// given, since an item left without it would be withdrawn without a word.
type upsertedItem struct {
	cart.Item
	Sellable *bool `json:"sellable"`
}

func (s *Server) serveCatalogUpsert(w http.ResponseWriter, r *http.Request) {
	var sent struct {
		Items []upsertedItem `json:"items"`
	}
	cs := s.catalogRequest(w, r, &sent, func() int { return len(sent.Items) }, "a catalog upload", "item")
	if cs == nil {
		return
	}
	req := CatalogUpsert{Items: make([]cart.Item, len(sent.Items))}
	// Every item is checked before anything is written: a batch with a
	// bad item changes nothing.
	var bad []protocol.ErrorDetail
	seen := make(map[string]int, len(req.Items))
	skus := make([]string, 0, len(req.Items))
	for i := range req.Items {
		it := &req.Items[i]
		*it = sent.Items[i].Item
		it.UpdatedAt = time.Time{}
		sellable := sent.Items[i].Sellable
		it.Sellable = sellable != nil && *sellable
		if sellable == nil {
			bad = append(bad, protocol.ErrorDetail{Index: i, SKU: it.SKU, Code: cart.CodeInvalidDetails, Message: "sellable is required: true to sell the item, false to withdraw it"})
		} else if e := cart.ValidateItem(it, s.lim); e != nil {
			bad = append(bad, protocol.ErrorDetail{Index: i, SKU: it.SKU, Code: e.Code, Message: e.Message})
		} else if j, dup := seen[it.SKU]; dup {
			bad = append(bad, protocol.ErrorDetail{Index: i, SKU: it.SKU, Code: cart.CodeInvalidSKU, Message: "the same SKU as item " + strconv.Itoa(j)})
		}
		seen[it.SKU] = i
		skus = append(skus, it.SKU)
		if len(bad) >= maxBadDetails {
			break
		}
	}
	if s.refuseBatch(w, bad, "item(s) are not valid; nothing was stored") {
		return
	}
	if err := cs.UpsertItems(r.Context(), req.Items, s.now()); err != nil {
		s.httpFail(w, "store the items (nothing was stored)", "", err)
		return
	}
	s.announceCatalog(r.Context(), skus)
	writeJSON(w, http.StatusOK, CatalogResult{Upserted: len(req.Items)})
}

// maxBadDetails bounds the bad items a refused catalog batch names.
const maxBadDetails = 100

// refuseBatch answers a catalog batch with bad items 400 invalid, naming
// each, and reports whether it did (none bad: it answers nothing).
func (s *Server) refuseBatch(w http.ResponseWriter, bad []protocol.ErrorDetail, what string) bool {
	if len(bad) == 0 {
		return false
	}
	e := protocol.Errorf(protocol.ErrInvalid, "%d %s", len(bad), what)
	e.Details = bad
	s.httpError(w, e)
	return true
}

func (s *Server) serveCatalogDelete(w http.ResponseWriter, r *http.Request) {
	var req CatalogDelete
	cs := s.catalogRequest(w, r, &req, func() int { return len(req.SKUs) }, "a delete", "SKU")
	if cs == nil {
		return
	}
	// As an upload: every SKU is checked first, and a bad one deletes
	// nothing (a SKU in another Unicode form would match no item and
	// be answered as deleted).
	var bad []protocol.ErrorDetail
	for i, sku := range req.SKUs {
		if e := cart.ValidateSKU(sku, s.lim); e != nil {
			bad = append(bad, protocol.ErrorDetail{Index: i, SKU: sku, Code: e.Code, Message: e.Message})
			if len(bad) >= maxBadDetails {
				break
			}
		}
	}
	if s.refuseBatch(w, bad, "SKU(s) are not valid; nothing was deleted") {
		return
	}
	n, err := cs.DeleteItems(r.Context(), req.SKUs)
	if err != nil {
		s.httpFail(w, "delete the items", "", err)
		return
	}
	s.announceCatalog(r.Context(), req.SKUs)
	writeJSON(w, http.StatusOK, CatalogResult{Deleted: n})
}

func (s *Server) serveCatalogList(w http.ResponseWriter, r *http.Request) {
	cs := s.catalogStore(w)
	if cs == nil {
		return
	}
	limit, perr := pageLimit(r, 100)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	items, err := cs.ListItems(r.Context(), r.URL.Query().Get("after"), limit)
	if err != nil {
		s.httpFail(w, "list the items", "", err)
		return
	}
	page := CatalogPage{Items: items}
	if page.Items == nil {
		page.Items = []cart.Item{}
	}
	if len(items) == limit {
		page.Next = items[len(items)-1].SKU
	}
	writeJSON(w, http.StatusOK, page)
}

// pageLimit reads ?limit= (1 to maxPage, def when absent).
func pageLimit(r *http.Request, def int) (int, *protocol.Error) {
	q := r.URL.Query().Get("limit")
	if q == "" {
		return def, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > maxPage {
		return 0, protocol.Errorf(protocol.ErrInvalid, "limit must be 1 to %d", maxPage)
	}
	return n, nil
}

// EventPage answers GET /v1/backend/events and /v1/backend/events/dead.
type EventPage struct {
	Events []Event `json:"events"`
	// Next is the after= of the next page (the last event's cursor, or
	// the given one when there was none): keep it and ask again later.
	Next string `json:"next"`
}

func (s *Server) eventStore(w http.ResponseWriter) EventStore {
	if s.events == nil {
		s.httpError(w, protocol.Errorf(protocol.ErrInvalid, "this server records no events (see -api-keys in docs/integration.md)"))
	}
	return s.events
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	es := s.eventStore(w)
	if es == nil {
		return
	}
	limit, perr := pageLimit(r, 100)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	after := r.URL.Query().Get("after")
	evs, err := es.EventsAfter(r.Context(), after, limit)
	if err != nil {
		if errors.Is(err, ErrBadCursor) {
			s.httpError(w, protocol.Errorf(protocol.ErrInvalid, "after is not a cursor this server gave"))
			return
		}
		s.httpFail(w, "read events", "", err)
		return
	}
	writeJSON(w, http.StatusOK, eventPage(evs, after))
}

func eventPage(evs []Event, after string) EventPage {
	p := EventPage{Events: shownEvents(evs), Next: after}
	if len(evs) > 0 {
		p.Next = evs[len(evs)-1].Cursor
	}
	return p
}

// shownEvents returns evs as the API shows them, never nil: next_at only on
// pending events, the only ones that are due again (a store keeps the
// last due time of the others), and last_error only with the failed
// attempts it belongs to (a retry by hand starts the count again, and an
// event delivered then has no failure to show).
func shownEvents(evs []Event) []Event {
	if evs == nil {
		return []Event{}
	}
	for i := range evs {
		if evs[i].State != EventPending {
			evs[i].NextAt = time.Time{}
		}
		if evs[i].Attempts == 0 {
			evs[i].LastError = ""
		}
	}
	return evs
}

func (s *Server) serveDeadEvents(w http.ResponseWriter, r *http.Request) {
	es := s.eventStore(w)
	if es == nil {
		return
	}
	limit, perr := pageLimit(r, 100)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	var after int64
	if q := r.URL.Query().Get("after"); q != "" {
		var err error
		if after, err = strconv.ParseInt(q, 10, 64); err != nil || after < 0 {
			s.httpError(w, protocol.Errorf(protocol.ErrInvalid, "after must be the next of a previous page"))
			return
		}
	}
	evs, err := es.DeadEvents(r.Context(), after, limit)
	if err != nil {
		s.httpFail(w, "read dead events", "", err)
		return
	}
	p := EventPage{Events: shownEvents(evs), Next: strconv.FormatInt(after, 10)}
	if len(evs) > 0 {
		p.Next = strconv.FormatInt(evs[len(evs)-1].Seq, 10)
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) serveRetryEvent(w http.ResponseWriter, r *http.Request) {
	es := s.eventStore(w)
	if es == nil {
		return
	}
	err := es.RetryEvent(r.Context(), r.PathValue("event"))
	switch {
	case errors.Is(err, ErrEventNotFound):
		s.httpError(w, protocol.Errorf(protocol.ErrNotFound, "no dead event %s", r.PathValue("event")))
	case err != nil:
		s.httpFail(w, "retry the event", "", err)
	default:
		s.eventsWritten(true)
		writeJSON(w, http.StatusOK, map[string]string{"status": EventPending})
	}
}

// ErrBadCursor is what an EventStore returns for a feed cursor it did not
// give: not a cursor, or past every cursor it gave.
var ErrBadCursor = errors.New("syncserver: not a feed cursor")
