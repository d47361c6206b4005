package syncserver

import (
	"context"
	"errors"
	"net/http"

	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// This file is the one place where errors of the core become what a
// client is told: failure for both transports, httpFail with the HTTP
// status (HTTPStatus). The core returns domain errors (ErrCartExpired,
// ErrCartGone, ...) or, for what is the client's fault, *protocol.Error.

// errCartExpired is cart_expired for cartID, the same on every route: a
// guest cart is replaced by a new device token's; a user cart answers
// cart_expired until the purge has dropped its record, after which the
// user starts a new, empty one.
func errCartExpired(cartID string) *protocol.Error {
	msg := "guest cart %s expired after a long time without changes; a new device token (a hello without one, or POST /v1/devices) gets a fresh cart"
	if cartKind(cartID) == KindUser {
		msg = "user cart %s expired after a long time without changes; the user's next request finds a new, empty cart"
	}
	e := protocol.Errorf(protocol.ErrCartExpired, msg, cartID)
	e.Cart = cartID
	return e
}

// errCartErased is what a device on cartID is told when the storefront had
// its user forgotten: cart_expired, as the device goes on the same way.
func errCartErased(cartID string) *protocol.Error {
	e := protocol.Errorf(protocol.ErrCartExpired, "cart %s was emptied at the storefront's request (its user erased); reconnect for the empty cart", cartID)
	e.Cart, e.Erased = cartID, true
	return e
}

// failure maps err, from doing what (in words: "store the operations") to
// cartID (may be empty), to the error the client is told:
//   - a *protocol.Error is told as it is;
//   - ErrCartExpired is cart_expired naming the cart;
//   - ErrCartGone (the cart was purged under the change) is a retryable
//     internal error, logged as information: a race, not a fault;
//   - a cancelled request (the client left) is logged at debug;
//   - anything else is a fault: logged as an error, told as internal.
func (s *Server) failure(what, cartID string, err error) *protocol.Error {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, ErrCartExpired):
		s.metExpired(cartID, err)
		return errCartExpired(cartID)
	case errors.Is(err, ErrCartGone):
		s.log.Info("could not "+what+": the cart was deleted meanwhile", logkey.Cart, cartID)
		return protocol.Errorf(protocol.ErrInternal, "could not %s: the cart was deleted meanwhile; retry", what)
	case errors.Is(err, context.Canceled):
		s.log.Debug("could not "+what+": request cancelled", logkey.Cart, cartID)
	default:
		s.log.Error("could not "+what, logkey.Cart, cartID, logkey.Err, err)
	}
	return protocol.Errorf(protocol.ErrInternal, "could not %s; retry", what)
}

// metExpired notes err, from reading or changing cartID: a user cart found
// expired (by another instance, whose user retention is on) has this one
// start such carts over from now on (reviveUser).
func (s *Server) metExpired(cartID string, err error) {
	if errors.Is(err, ErrCartExpired) && cartKind(cartID) == KindUser {
		s.userTombs.Store(true)
	}
}

// httpFail answers an HTTP request with failure(what, cartID, err) and its
// status.
func (s *Server) httpFail(w http.ResponseWriter, what, cartID string, err error) {
	s.httpError(w, s.failure(what, cartID, err))
}

// HTTPStatus maps a protocol error code to its HTTP status.
func HTTPStatus(code protocol.ErrorCode) int {
	switch code {
	case protocol.ErrMalformed, protocol.ErrUnknownType, protocol.ErrInvalid, protocol.ErrUnsupportedVersion, protocol.ErrHelloRequired:
		return http.StatusBadRequest
	case protocol.ErrTooLarge:
		return http.StatusRequestEntityTooLarge
	case protocol.ErrUnauthorized, protocol.ErrTokenExpired:
		return http.StatusUnauthorized
	case protocol.ErrForbidden:
		return http.StatusForbidden
	case protocol.ErrCartExpired:
		return http.StatusGone
	case protocol.ErrOutOfOrder, protocol.ErrCartChanged, protocol.ErrCheckoutEnded, protocol.ErrCartEmpty, protocol.ErrTooManyCheckouts:
		return http.StatusConflict
	case protocol.ErrNotFound:
		return http.StatusNotFound
	case protocol.ErrOverloaded:
		return http.StatusServiceUnavailable
	case protocol.ErrRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}
