package syncserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// Checkouts: the shopper confirms the review step, the widget asks for a
// checkout at the version reviewed (POST /v1/checkout); the storefront's
// backend reads it, completes it when the order is placed, or cancels it.
// A checkout lives in its cart (cart.Cart.Checkouts) and every change to it
// is a change of the cart, under the cart's lock.

// CheckoutClient is the client id of the ops a completed checkout makes.
const CheckoutClient = "checkout"

// CheckoutRequest is the body of POST /v1/checkout.
type CheckoutRequest struct {
	// Version is the cart version the shopper reviewed.
	Version uint64 `json:"version"`
}

// CheckoutResponse answers POST /v1/checkout: the checkout, or (409
// cart_changed) the error and the cart as it is now, with its notices.
type CheckoutResponse struct {
	Checkout *cart.Checkout  `json:"checkout,omitempty"`
	Error    *protocol.Error `json:"error,omitempty"`
	Cart     *cart.Cart      `json:"cart,omitempty"`
}

// CompleteRequest is the body of POST /v1/backend/checkouts/{id}/complete.
type CompleteRequest struct {
	// Order is the storefront's order reference, kept with the checkout.
	Order string `json:"order,omitempty"`
}

// newCheckoutID names a checkout of cartID: the cart id is part of it, so
// that the checkout is found in its cart.
func newCheckoutID(cartID string) string {
	b := make([]byte, 12)
	rand.Read(b)
	return "co_" + cartID + "_" + hex.EncodeToString(b)
}

// checkoutCart returns the cart id of a checkout id, or "".
func checkoutCart(id string) string {
	rest, ok := strings.CutPrefix(id, "co_")
	if !ok {
		return ""
	}
	i := strings.LastIndexByte(rest, '_')
	if i < 0 || !cartIDPattern.MatchString(rest[:i]) || len(rest[i+1:]) != 24 {
		return ""
	}
	return rest[:i]
}

// serveCheckout creates a checkout of the caller's cart at the version the
// shopper reviewed.
func (s *Server) serveCheckout(w http.ResponseWriter, r *http.Request) {
	id, ok := s.httpIdentity(w, r)
	if !ok {
		return
	}
	body, perr := s.readBody(w, r, 4096)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	var req CheckoutRequest
	if err := protocol.DecodeJSON(body, &req); err != nil {
		s.httpError(w, protocol.AsError(err))
		return
	}
	if req.Version == 0 {
		s.httpError(w, protocol.Errorf(protocol.ErrInvalid, "version (the reviewed cart version) is required"))
		return
	}
	co, perr := s.createCheckout(r.Context(), id.CartID, req.Version)
	if perr != nil {
		if perr.Code == protocol.ErrCartChanged || perr.Code == protocol.ErrCartEmpty {
			c, _, err := s.snapshot(r.Context(), id.CartID, nil)
			if err == nil && perr == errCartMerged {
				// The tombstone keeps the lines it had, which are the
				// account's now: this cart holds nothing to check out.
				c = &cart.Cart{ID: c.ID, Version: c.Version, Lines: []*cart.Line{}}
			}
			if err == nil {
				s.metrics.protocolErrors.WithLabelValues(string(perr.Code)).Inc()
				writeJSON(w, http.StatusConflict, CheckoutResponse{Error: perr, Cart: c})
				return
			}
		}
		s.httpError(w, perr)
		return
	}
	writeJSON(w, http.StatusCreated, CheckoutResponse{Checkout: co.Shown(s.now())})
}

// errCartMerged answers a checkout of a guest cart merged into a user cart
// at a login: nothing to check out here (its lines are the account's).
var errCartMerged = protocol.Errorf(protocol.ErrCartEmpty, "the cart was merged into another at a login: log in to check it out")

// createCheckout checks out cartID at the reviewed version.
func (s *Server) createCheckout(ctx context.Context, cartID string, reviewed uint64) (*cart.Checkout, *protocol.Error) {
	// The catalog is read before the cart is locked, for the lines the
	// cart has then, both past the caches, which may be behind another
	// instance's commit (a price changed there a moment ago). Should the locked cart have a line besides
	// (an edit that landed meanwhile), its item is read and the checkout
	// made again: no line is checked out without the catalog's word on
	// it. A change to an item that lands meanwhile is caught by the
	// notices of the next read.
	var looked *cart.Cart // the cart whose lines items covers
	switch rec, err := s.freshStore().Load(ctx, cartID, nil); {
	case err == nil:
		looked = rec.Cart
	case !errors.Is(err, ErrCartNotFound):
		return nil, s.checkoutLoadError(cartID, err)
	}
	var co *cart.Checkout
	var ce *cart.Error
	var err error
	for attempt := 1; ; attempt++ {
		var items map[string]cart.Item
		if looked != nil {
			if items, err = s.cartItems(ctx, looked, true); err != nil {
				return nil, s.failure("read the catalog", cartID, err)
			}
		}
		var missed *cart.Cart // the locked cart, when items misses a line of it
		err = s.store.Mutate(ctx, cartID, nil, func(rec *Record) error {
			co, ce, missed = nil, nil, nil
			if rec.Meta.MergedInto != "" {
				return errCartMerged
			}
			if !rec.Exists {
				return protocol.Errorf(protocol.ErrCartEmpty, "the cart is empty")
			}
			if !sameSKUs(looked, rec.Cart) {
				missed = rec.Cart.Clone()
				return errNothingToDo
			}
			var created bool
			co, created, ce = cart.NewCheckout(rec.Cart, reviewed, items, newCheckoutID(cartID), s.now(), s.cfg.CheckoutTTL)
			if ce != nil || !created {
				return errNothingToDo // refused, or this review's open checkout
			}
			// A checkout is the shopper's latest touch of the cart: the
			// retention and the abandonment count from it, so that the
			// purge never takes a cart while it is being paid for.
			rec.Meta.UpdatedAt = s.now()
			s.addEvent(rec, EventCheckoutCreated, func(d *EventData) { d.Checkout = co })
			return nil
		})
		if missed == nil || err == nil {
			break
		}
		if attempt == maxCheckoutAttempts {
			return nil, protocol.Errorf(protocol.ErrCartChanged, "the cart kept changing while the checkout was made: review it again")
		}
		looked = missed
	}
	if err != nil && !errors.Is(err, errNothingToDo) {
		return nil, s.checkoutLoadError(cartID, err)
	}
	if ce != nil {
		code := protocol.ErrCartChanged
		switch ce.Code {
		case cart.CodeCartEmpty:
			code = protocol.ErrCartEmpty
		case cart.CodeTooManyCheckouts:
			code = protocol.ErrTooManyCheckouts
		}
		return nil, protocol.Errorf(code, "%s", ce.Message)
	}
	if err != nil {
		return co, nil // this review's open checkout, unchanged
	}
	s.eventsWritten(true)
	return co, nil
}

// maxCheckoutAttempts bounds how often a checkout is made again for lines
// the catalog was not read for.
const maxCheckoutAttempts = 3

// sameSKUs reports whether every SKU of c is one of looked's (nil for none).
func sameSKUs(looked, c *cart.Cart) bool {
	for _, l := range c.Lines {
		if looked == nil || !slices.ContainsFunc(looked.Lines, func(o *cart.Line) bool { return o.SKU == l.SKU }) {
			return false
		}
	}
	return true
}

func (s *Server) checkoutLoadError(cartID string, err error) *protocol.Error {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, ErrCartNotFound):
		return protocol.Errorf(protocol.ErrCartEmpty, "the cart is empty")
	}
	return s.failure("store the checkout", cartID, err)
}

// checkoutPath reads {checkout} and the cart it belongs to.
func (s *Server) checkoutPath(r *http.Request) (string, string, *protocol.Error) {
	id := r.PathValue("checkout")
	cartID := checkoutCart(id)
	if cartID == "" {
		return "", "", protocol.Errorf(protocol.ErrNotFound, "no checkout %q", id)
	}
	return id, cartID, nil
}

func (s *Server) serveCheckoutGet(w http.ResponseWriter, r *http.Request) {
	id, cartID, perr := s.checkoutPath(r)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	st := s.freshStore()
	rec, err := st.Load(r.Context(), cartID, nil)
	if err == nil && rec.Meta.MergedInto != "" && rec.Cart.Checkout(id) == nil {
		// Made as a guest, moved to the user cart at login.
		rec, err = st.Load(r.Context(), rec.Meta.MergedInto, nil)
	}
	if err != nil && (errors.Is(err, ErrCartNotFound) || errors.Is(err, ErrCartExpired)) {
		s.httpError(w, protocol.Errorf(protocol.ErrNotFound, "no checkout %s", id))
		return
	}
	if err != nil {
		s.httpError(w, s.checkoutLoadError(cartID, err))
		return
	}
	co := rec.Cart.Checkout(id)
	if co == nil {
		s.httpError(w, protocol.Errorf(protocol.ErrNotFound, "no checkout %s", id))
		return
	}
	writeJSON(w, http.StatusOK, checkoutView(co, rec.Cart, s.now()))
}

// CheckoutView is a checkout as GET /v1/backend/checkouts/{checkout}
// answers it: the snapshot the shopper confirmed, and where its cart
// stands now.
type CheckoutView struct {
	*cart.Checkout
	// CurrentCartID is the cart the checkout lives in now, when that is
	// not CartID: the user cart that took a guest's checkout at a login.
	// Completing the checkout takes its lines from that cart.
	CurrentCartID string `json:"current_cart_id,omitempty"`
	// CartMoved, for an open checkout only, says whether the cart it
	// lives in changed since the shopper confirmed it (for a guest's
	// checkout taken by a user cart, since that login): an order that
	// should follow the cart sends the shopper back to it first.
	CartMoved *bool `json:"cart_moved,omitempty"`
}

// checkoutView is co as the storefront reads it at now, living in c.
func checkoutView(co *cart.Checkout, c *cart.Cart, now time.Time) CheckoutView {
	v := CheckoutView{Checkout: co.Shown(now)}
	from := co.Version
	if c.ID != co.CartID {
		v.CurrentCartID, from = c.ID, co.Base
	}
	if v.Status == cart.CheckoutOpen {
		moved := c.Version > from
		v.CartMoved = &moved
	}
	return v
}

// serveCheckoutComplete records the placed order: the checked-out
// quantities leave the cart, once however often it is called.
func (s *Server) serveCheckoutComplete(w http.ResponseWriter, r *http.Request) {
	var req CompleteRequest
	body, perr := s.readBody(w, r, 4096)
	if perr == nil && len(body) > 0 {
		if err := protocol.DecodeJSON(body, &req); err != nil {
			perr = protocol.AsError(err)
		} else if len(req.Order) > 256 {
			perr = protocol.Errorf(protocol.ErrInvalid, "order must be at most 256 bytes")
		}
	}
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	s.endCheckout(w, r, func(rec *Record, id string) (bool, *cart.Error) {
		ops, done, ce := rec.Cart.CompleteCheckout(id, req.Order, CheckoutClient, s.now(), s.lim)
		if ce != nil || !done {
			return false, ce
		}
		now := s.now()
		for i, op := range ops {
			v := rec.Cart.Version - uint64(len(ops)-1-i)
			rec.Appended = append(rec.Appended, Change{Version: v, Op: op, At: now})
		}
		if len(ops) > 0 {
			rec.Meta.UpdatedAt = now
		}
		co := rec.Cart.Checkout(id) // addEvent shows a copy
		s.addEvent(rec, EventCheckoutCompleted, func(d *EventData) { d.Checkout = co })
		if len(ops) > 0 {
			s.addEvent(rec, EventCartUpdated, nil)
		}
		return true, nil
	})
}

func (s *Server) serveCheckoutCancel(w http.ResponseWriter, r *http.Request) {
	s.endCheckout(w, r, func(rec *Record, id string) (bool, *cart.Error) {
		done, ce := rec.Cart.CancelCheckout(id, s.now())
		if ce != nil || !done {
			return false, ce
		}
		co := rec.Cart.Checkout(id) // addEvent shows a copy
		s.addEvent(rec, EventCheckoutCancelled, func(d *EventData) { d.Checkout = co })
		return true, nil
	})
}

// endCheckout runs change on the checkout's cart, locked; change reports
// whether it changed anything. It answers with the checkout and publishes
// the cart when its lines changed.
func (s *Server) endCheckout(w http.ResponseWriter, r *http.Request, change func(rec *Record, id string) (bool, *cart.Error)) {
	id, cartID, perr := s.checkoutPath(r)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	var co *cart.Checkout
	var ce *cart.Error
	var from uint64
	var by []protocol.OpID
	var after *cart.Cart
	var movedTo string
	fn := func(rec *Record) error {
		co, ce, by, after, movedTo = nil, nil, nil, nil, ""
		if !rec.Exists {
			ce = &cart.Error{Code: cart.CodeCheckoutUnknown}
			return errNothingToDo
		}
		if rec.Meta.MergedInto != "" && rec.Cart.Checkout(id) == nil {
			// Made as a guest, moved to the user cart at login (a
			// login with keep leaves it here).
			movedTo = rec.Meta.MergedInto
			return errNothingToDo
		}
		from = rec.Cart.Version
		var changed bool
		if changed, ce = change(rec, id); ce != nil {
			return errNothingToDo
		}
		co = rec.Cart.Checkout(id).Shown(s.now())
		if !changed {
			return errNothingToDo
		}
		for _, ch := range rec.Appended {
			by = append(by, protocol.OpID{Client: ch.Op.Client, Seq: ch.Op.Seq})
		}
		after = rec.Cart.Public()
		return nil
	}
	err := s.store.Mutate(r.Context(), cartID, nil, fn)
	if movedTo != "" && errors.Is(err, errNothingToDo) {
		cartID = movedTo
		err = s.store.Mutate(r.Context(), cartID, nil, fn)
		if movedTo != "" && ce == nil && co == nil {
			ce = &cart.Error{Code: cart.CodeCheckoutUnknown}
		}
	}
	// What fn set counts only if it ran to the end: err is nil or its
	// own (see Store.Mutate).
	switch {
	case errors.Is(err, ErrCartNotFound), errors.Is(err, ErrCartExpired):
		s.httpError(w, protocol.Errorf(protocol.ErrNotFound, "no checkout %s", id))
		return
	case err != nil && err != errNothingToDo:
		s.httpError(w, s.checkoutLoadError(cartID, err))
		return
	case ce != nil && ce.Code == cart.CodeCheckoutUnknown:
		s.httpError(w, protocol.Errorf(protocol.ErrNotFound, "no checkout %s", id))
		return
	case ce != nil:
		s.httpError(w, protocol.Errorf(protocol.ErrCheckoutEnded, "%s", ce.Message))
		return
	}
	if err == nil {
		s.eventsWritten(true)
		if len(by) > 0 {
			s.annotate(r.Context(), after)
			s.publish(r.Context(), cartID, &outcome{from: from, by: by, cart: after})
		}
	}
	writeJSON(w, http.StatusOK, co)
}
