package syncserver

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// routes lays out the endpoints. docs/protocol.md and docs/openapi.yaml
// describe them. Every one is held to the per-address request rate
// (IPLimits), but for a backend request with a valid API key; the
// websocket also to the connection limit, and new devices to the issuance
// rate.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	methods := map[string][]string{} // path -> the methods it takes
	var paths []string               // methods' keys, in the order of the routes
	for _, r := range append([]route{
		{http.MethodGet, "/v1/sync", s.serveSync, false},
		{http.MethodPost, "/v1/devices", s.serveNewDevice, false},
		{http.MethodGet, "/v1/cart", s.serveCart, false},
		{http.MethodPost, "/v1/cart/ops", s.serveOps, false},
		{http.MethodGet, "/v1/cart/changes", s.serveChanges, false},
		{http.MethodPost, "/v1/login", s.serveLogin, false},
		{http.MethodPost, "/v1/login/choose", s.serveChoose, false},
		{http.MethodPost, "/v1/checkout", s.serveCheckout, false},
	}, s.backendRoutes()...) {
		h := s.guard(r.h)
		if r.keyed {
			h = s.guardKeyed(r.h)
		}
		mux.HandleFunc(r.method+" "+r.path, h)
		if methods[r.path] == nil {
			paths = append(paths, r.path)
		}
		methods[r.path] = append(methods[r.path], r.method)
	}
	// Anything else under /v1/ gets the typed error too, not the mux's
	// plain text.
	mux.HandleFunc("/v1/", s.guard(func(w http.ResponseWriter, r *http.Request) {
		m := methods[r.URL.Path]
		for _, path := range paths {
			if m == nil && pathMatches(path, r.URL.Path) {
				m = methods[path]
			}
		}
		if m != nil {
			w.Header().Set("Allow", strings.Join(m, ", "))
			writeError(w, http.StatusMethodNotAllowed, protocol.Errorf(protocol.ErrInvalid, "%s takes %s, not %s", r.URL.Path, strings.Join(m, ", "), r.Method))
			return
		}
		writeError(w, http.StatusNotFound, protocol.Errorf(protocol.ErrInvalid, "no endpoint %s; see docs/protocol.md", r.URL.Path))
	}))
	return mux
}

// pathMatches reports whether path is one of pattern's, a route path whose
// {name} segments each stand for one non-empty segment.
func pathMatches(pattern, path string) bool {
	for {
		pseg, prest, pmore := strings.Cut(pattern, "/")
		seg, rest, more := strings.Cut(path, "/")
		switch {
		case pmore != more:
			return false
		case strings.HasPrefix(pseg, "{"):
			if seg == "" {
				return false
			}
		case pseg != seg:
			return false
		}
		if !more {
			return true
		}
		pattern, path = prest, rest
	}
}

// uncleanPath reports whether path has an empty, "." or ".." segment
// (after its first character), which the mux would answer with a bare
// redirect to another path: under /v1/ that could send a request that
// named one cart to another.
func uncleanPath(path string) bool {
	return strings.Contains(path, "//") || strings.Contains(path, "/./") || strings.Contains(path, "/../") ||
		strings.HasSuffix(path, "/.") || strings.HasSuffix(path, "/..")
}

// DeviceResponse answers POST /v1/devices.
type DeviceResponse struct {
	DeviceToken string `json:"device_token"`
	CartID      string `json:"cart_id"`
}

// CartResponse answers GET /v1/cart.
type CartResponse struct {
	Cart  *cart.Cart        `json:"cart"`
	Acked map[string]uint64 `json:"acked,omitempty"`
}

// OpsRequest is the body of POST /v1/cart/ops.
type OpsRequest struct {
	Ops []cart.Op `json:"ops"`
}

// OpsResponse answers POST /v1/cart/ops.
type OpsResponse struct {
	Results []protocol.Result `json:"results"`
	Cart    *cart.Cart        `json:"cart"`
	// Error is set when the batch stopped early (out_of_order).
	Error *protocol.Error `json:"error,omitempty"`
}

// ChangesResponse answers GET /v1/cart/changes.
type ChangesResponse struct {
	// Changes since the asked version, oldest first; empty when compacted.
	Changes []Change `json:"changes"`
	// Compacted is true when the log no longer reaches back that far: the
	// cart snapshot is the answer.
	Compacted bool       `json:"compacted"`
	More      bool       `json:"more"`
	Cart      *cart.Cart `json:"cart"`
}

// LoginRequest is the body of POST /v1/login and POST /v1/login/choose.
type LoginRequest struct {
	Policy cart.Policy `json:"policy,omitempty"`
}

// LoginResponse answers POST /v1/login and POST /v1/login/choose: what
// the login merge did (absent when there was nothing to report), the
// user's cart after it, and, as in a welcome, the user and this device's
// guest cart, whose ops the user cart now takes.
type LoginResponse struct {
	Merge       *protocol.MergeInfo `json:"merge,omitempty"`
	Cart        *cart.Cart          `json:"cart"`
	User        string              `json:"user"`
	GuestCartID string              `json:"guest_cart_id,omitempty"`
}

// maxLoginBody bounds the body of the login endpoints.
const maxLoginBody = 4096

// serveLogin is the HTTP form of a hello with a user token: it merges the
// device's guest cart into the user's cart by the policy (the server's
// default when empty; "choose" only reports both carts, for
// POST /v1/login/choose), and answers with the result. Device and user
// tokens are in the usual headers.
func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	id, req, ok := s.loginRequest(w, r)
	if !ok {
		return
	}
	if req.Policy != "" && !req.Policy.Valid() {
		s.httpError(w, protocol.Errorf(protocol.ErrInvalid, "unknown merge policy %q", req.Policy))
		return
	}
	merge, merged := s.login(r.Context(), id, req.Policy)
	s.loginAnswer(w, r, id, merge, merged)
}

// serveChoose is the HTTP form of the choose message: the shopper's pick
// after a login that reported both carts (status choose). It answers like
// POST /v1/login, with the merge status merged, or already when the guest
// cart was merged (or emptied) meanwhile.
func (s *Server) serveChoose(w http.ResponseWriter, r *http.Request) {
	id, req, ok := s.loginRequest(w, r)
	if !ok {
		return
	}
	switch req.Policy {
	case cart.PolicyMerge, cart.PolicyReplace, cart.PolicyKeep:
	default:
		s.httpError(w, protocol.Errorf(protocol.ErrInvalid, "choose takes the policy merge, replace or keep"))
		return
	}
	merge, merged := s.login(r.Context(), id, req.Policy)
	if merge == nil {
		merge = &protocol.MergeInfo{Status: protocol.MergeAlready}
	}
	s.loginAnswer(w, r, id, merge, merged)
}

// loginRequest authenticates a login request, which needs a user token,
// and reads its body (which may be empty).
func (s *Server) loginRequest(w http.ResponseWriter, r *http.Request) (Identity, LoginRequest, bool) {
	var req LoginRequest
	id, ok := s.httpIdentity(w, r)
	if !ok {
		return id, req, false
	}
	if id.User == "" {
		s.httpError(w, protocol.Errorf(protocol.ErrUnauthorized, "login needs X-Cartsync-User: <user token>"))
		return id, req, false
	}
	body, perr := s.readBody(w, r, maxLoginBody)
	if perr != nil {
		s.httpError(w, perr)
		return id, req, false
	}
	if len(body) > 0 {
		if err := protocol.DecodeJSON(body, &req); err != nil {
			s.httpError(w, protocol.AsError(err))
			return id, req, false
		}
	}
	return id, req, true
}

// loginAnswer publishes what a login merge changed and answers with the
// user's cart after it.
func (s *Server) loginAnswer(w http.ResponseWriter, r *http.Request, id Identity, merge *protocol.MergeInfo, merged *outcome) {
	if merged != nil {
		s.publish(r.Context(), id.CartID, merged)
	}
	c, _, err := s.snapshot(r.Context(), id.CartID, nil)
	if err != nil {
		s.snapshotError(w, id.CartID, err)
		return
	}
	writeJSON(w, http.StatusOK, LoginResponse{Merge: merge, Cart: c, User: id.User, GuestCartID: s.guestFor(r.Context(), id)})
}

// ErrorResponse is every HTTP error body.
type ErrorResponse struct {
	Error *protocol.Error `json:"error"`
}

func (s *Server) serveNewDevice(w http.ResponseWriter, r *http.Request) {
	if perr := s.allowNewDevice(r.Context()); perr != nil {
		s.httpError(w, perr)
		return
	}
	var old Identity
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok != "" {
		// In place of the device's old token (a logout, an expired
		// cart): a token the server issued makes the new one follow it;
		// any other is ignored (a refused one is no device), as a new
		// device has none.
		old, _ = s.authenticateDevice(tok)
	}
	id := s.rotateDevice(old)
	s.noteNewCart(r.Context(), id.CartID)
	writeJSON(w, http.StatusCreated, DeviceResponse{DeviceToken: id.Token, CartID: id.CartID})
}

// httpIdentity authenticates a request: "Authorization: Bearer <device
// token>", and "X-Cartsync-User: <user token>" for the user's cart.
func (s *Server) httpIdentity(w http.ResponseWriter, r *http.Request) (Identity, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		s.httpError(w, refusedDevice("missing Authorization: Bearer <device token>"))
		return Identity{}, false
	}
	id, perr := s.authenticate(r.Context(), strings.TrimSpace(tok), r.Header.Get("X-Cartsync-User"))
	if perr != nil {
		s.httpError(w, perr)
		return Identity{}, false
	}
	if id.User != "" && s.reviveUser(r.Context(), id) {
		// Told once: the user's next request finds the cart started
		// over, empty (a login then merges into it).
		s.httpError(w, errCartExpired(id.CartID))
		return Identity{}, false
	}
	return id, true
}

func (s *Server) serveCart(w http.ResponseWriter, r *http.Request) {
	id, ok := s.httpIdentity(w, r)
	if !ok {
		return
	}
	clients, perr := clientsParam(r, protocol.ErrTooLarge)
	if perr != nil {
		s.httpError(w, perr)
		return
	}
	c, seqs, err := s.snapshot(r.Context(), id.CartID, clients)
	if err != nil {
		s.snapshotError(w, id.CartID, err)
		return
	}
	writeJSON(w, http.StatusOK, CartResponse{Cart: c, Acked: seqs})
}

// clientsParam reads the client ids a cart read asks the acked seqs of
// (?clients=a,b, or the parameter repeated, ?clients=a&clients=b); none if
// absent. More than MaxClientsPerSync are answered tooMany: too_large to a
// shopper's device, as its sync over the websocket is (it splits them),
// invalid to the storefront's backend (as documented there).
func clientsParam(r *http.Request, tooMany protocol.ErrorCode) ([]string, *protocol.Error) {
	var clients []string
	for _, q := range r.URL.Query()["clients"] {
		if q != "" { // ?clients= with nothing: as if absent (a join of no ids)
			clients = append(clients, strings.Split(q, ",")...)
		}
	}
	if len(clients) > protocol.MaxClientsPerSync {
		return nil, protocol.Errorf(tooMany, "clients names %d client ids, at most %d", len(clients), protocol.MaxClientsPerSync)
	}
	for _, c := range clients {
		if !cart.ValidClientID(c) {
			return nil, protocol.Errorf(protocol.ErrInvalid, "clients: client ids must be 1 to %d printable bytes, separated by commas", cart.MaxClientID)
		}
	}
	return clients, nil
}

func (s *Server) serveOps(w http.ResponseWriter, r *http.Request) {
	id, ok := s.httpIdentity(w, r)
	if !ok {
		return
	}
	s.applyOps(w, r, id)
}

func (s *Server) serveChanges(w http.ResponseWriter, r *http.Request) {
	id, ok := s.httpIdentity(w, r)
	if !ok {
		return
	}
	since, err := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
	if err != nil {
		s.httpError(w, protocol.Errorf(protocol.ErrInvalid, "since must be a version number"))
		return
	}
	limit := 100
	if q := r.URL.Query().Get("limit"); q != "" {
		if limit, err = strconv.Atoi(q); err != nil || limit < 1 || limit > LogKeep {
			s.httpError(w, protocol.Errorf(protocol.ErrInvalid, "limit must be 1 to %d", LogKeep))
			return
		}
	}
	resp := ChangesResponse{Changes: []Change{}}
	changes, err := s.store.Changes(r.Context(), id.CartID, since, limit+1)
	switch {
	case errors.Is(err, ErrCompacted):
		resp.Compacted = true
	case err != nil:
		s.httpFail(w, "load changes", id.CartID, err)
		return
	default:
		if len(changes) > limit {
			changes, resp.More = changes[:limit], true
		}
		if changes != nil {
			resp.Changes = changes
		}
	}
	c, _, err := s.snapshot(r.Context(), id.CartID, nil)
	if err != nil {
		s.snapshotError(w, id.CartID, err)
		return
	}
	resp.Cart = c
	writeJSON(w, http.StatusOK, resp)
}

// snapshotError answers a failed cart read: 410 cart_expired for an
// expired cart (POST /v1/devices gives a fresh one), else 500.
func (s *Server) snapshotError(w http.ResponseWriter, cartID string, err error) {
	s.httpFail(w, "load the cart", cartID, err)
}

func (s *Server) httpError(w http.ResponseWriter, e *protocol.Error) {
	s.metrics.protocolErrors.WithLabelValues(string(e.Code)).Inc()
	if e.RetryAfterMS > 0 {
		w.Header().Set("Retry-After", strconv.Itoa((e.RetryAfterMS+999)/1000))
	}
	writeError(w, HTTPStatus(e.Code), e)
}

func writeError(w http.ResponseWriter, status int, e *protocol.Error) {
	writeJSON(w, status, ErrorResponse{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// healthLog logs what /readyz finds off at most once per healthLogEvery,
// however often it is asked.
type healthLog struct{ last atomic.Int64 }

const healthLogEvery = 10 * time.Second

func (h *healthLog) note(log *slog.Logger, msg string, err error) {
	now := time.Now().UnixNano()
	if last := h.last.Load(); now-last < int64(healthLogEvery) || !h.last.CompareAndSwap(last, now) {
		return
	}
	log.Warn("readyz: "+msg, logkey.Err, err)
}

// HealthHandler answers liveness (/healthz) and readiness (/readyz).
func (s *Server) HealthHandler(ready bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ready && s.draining.Load() {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
			return
		}
		if ready {
			// Anyone may ask: the answer names what is off, and the
			// log says why (errors carry addresses, users and
			// database names).
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			defer cancel()
			if err := s.Ready(ctx); err != nil {
				s.notReadyLog.note(s.log, "not ready: the store does not answer", err)
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "store: not answering (the server's log says why)"})
				return
			}
			if d := s.Degraded(); len(d) > 0 {
				// Still ready: edits are acknowledged. Say what is off.
				s.degradedLog.note(s.log, "degraded", errors.New(strings.Join(d, "; ")))
				parts := make([]string, len(d))
				for i, m := range d {
					parts[i], _, _ = strings.Cut(m, ":")
				}
				writeJSON(w, http.StatusOK, map[string]any{"status": "degraded", "degraded": parts})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}
