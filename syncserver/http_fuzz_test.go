package syncserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// fuzzEnv is a server on a fresh memstore with two devices: device 0's
// guest cart has two lines, and user alice's cart (edited from device 1)
// has one. Each fuzz input gets its own, so a failure replays alone.
type fuzzEnv struct {
	t      *testing.T
	srv    *syncserver.Server
	store  *memstore.Store
	tokens []string // device tokens
	carts  []string // the carts the requests can reach
}

func newFuzzEnv(t *testing.T, lim cart.Limits, devices int) *fuzzEnv {
	t.Helper()
	store := memstore.New()
	srv, err := syncserver.New(context.Background(), syncserver.Config{
		Store: store, Users: testUsers{}, Limits: lim, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	e := &fuzzEnv{t: t, srv: srv, store: store, carts: []string{syncserver.UserCartID("alice")}}
	for range devices {
		var dev syncserver.DeviceResponse
		if code, body := e.do("POST", "/v1/devices", "", "", "", nil); code != http.StatusCreated || json.Unmarshal(body, &dev) != nil {
			t.Fatalf("POST /v1/devices = %d %s", code, body)
		}
		e.tokens = append(e.tokens, dev.DeviceToken)
		e.carts = append(e.carts, dev.CartID)
	}
	return e
}

// do serves one request and returns its status and body.
func (e *fuzzEnv) do(method, path, query, token, user string, body []byte) (int, []byte) {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.URL.RawQuery = query
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	if user != "" {
		r.Header.Set("X-Cartsync-User", user)
	}
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes()
}

// state describes every cart a request could reach: version, lines and
// whether it was merged away.
func (e *fuzzEnv) state() string {
	var parts []string
	for _, id := range e.carts {
		rec, err := e.store.Load(context.Background(), id, nil)
		if err != nil {
			parts = append(parts, id+": "+err.Error())
			continue
		}
		parts = append(parts, fmt.Sprintf("%s: v%d %q %s", id, rec.Cart.Version, rec.Meta.MergedInto, summarize(rec.Cart)))
	}
	return strings.Join(parts, "\n")
}

var errorCodes = map[protocol.ErrorCode]bool{
	protocol.ErrMalformed: true, protocol.ErrUnknownType: true, protocol.ErrTooLarge: true,
	protocol.ErrUnsupportedVersion: true, protocol.ErrHelloRequired: true, protocol.ErrInvalid: true,
	protocol.ErrUnauthorized: true, protocol.ErrTokenExpired: true, protocol.ErrForbidden: true,
	protocol.ErrCartExpired: true, protocol.ErrOutOfOrder: true, protocol.ErrOverloaded: true,
}

// fuzzRoutes are the HTTP endpoints, each with the method it serves
// (another method gets the mux's plain-text 405, which is not ours).
var fuzzRoutes = []struct{ method, path string }{
	{"GET", "/v1/cart"},
	{"POST", "/v1/cart/ops"},
	{"GET", "/v1/cart/changes"},
	{"POST", "/v1/login"},
	{"POST", "/v1/devices"},
}

// FuzzHTTP sends arbitrary bodies and query strings, with good, missing
// and arbitrary device and user tokens, to every HTTP endpoint: the
// server never panics or answers 5xx, every error is the typed JSON error
// with the status of its code, a refused request changes no cart, and a
// GET never does.
func FuzzHTTP(f *testing.F) {
	seeds := []struct {
		route, auth uint8
		query, tok  string
		body        string
	}{
		{0, 1, "", "", ""},
		{0, 2, "clients=c0,c1", "", ""},
		{0, 1, "clients=,", "", ""},
		{0, 1, "clients=" + strings.Repeat("c,", 70), "", ""},
		{0, 3, "", "AAAA", ""},
		{0, 0, "", "", ""},
		{1, 1, "", "", `{"ops":[{"client":"c0","seq":3,"kind":"add","sku":"mug","options":{"Size":"L"},"quantity":2,"base":2}]}`},
		{1, 2, "", "", `{"ops":[{"client":"c1","seq":2,"kind":"remove","sku":"tea","base":1}]}`},
		{1, 1, "", "", `{"ops":[{"client":"c0","seq":5,"kind":"add","sku":"mug","quantity":1}]}`},
		{1, 1, "", "", `{"ops":[{"client":"c0","seq":3,"kind":"set","sku":"jam","quantity":-1}]}`},
		{1, 1, "", "", `{"ops":[{"client":"c0","seq":3,"kind":"add","sku":"mug","quantity":1,"cart":"u_x"}]}`},
		{1, 1, "", "", `{"ops":[]}`},
		{1, 1, "", "", `{"ops":null,"extra":1}`},
		{1, 1, "", "", `{"ops":[{"seq":"1"}]}`},
		{1, 1, "", "", `[1,2`},
		{2, 1, "since=0&limit=1", "", ""},
		{2, 2, "since=0", "", ""},
		{2, 1, "since=-1", "", ""},
		{2, 1, "since=18446744073709551616&limit=0", "", ""},
		{2, 1, "since=1&limit=501", "", ""},
		{3, 2, "", "", `{"policy":"replace"}`},
		{3, 2, "", "", `{"policy":"choose"}`},
		{3, 2, "", "", `{"policy":"bogus"}`},
		{3, 1, "", "", `{}`},
		{3, 7, "", "user:", `[]`},
		{4, 0, "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.route, s.auth, s.query, s.tok, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, route, auth uint8, query, tok string, body []byte) {
		e := newFuzzEnv(t, cart.DefaultLimits, 2)
		e.setup()
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		var device, user string
		switch auth % 4 {
		case 1:
			device = e.tokens[0]
		case 2:
			device, user = e.tokens[0], "user:alice"
		case 3:
			device = tok
		}
		if auth&4 != 0 { // an arbitrary user token
			user = tok
		}
		before := e.state()
		code, resp := e.do(rt.method, rt.path, query, device, user, body)
		after := e.state()
		req := fmt.Sprintf("%s %s?%s (device %q, user %q) %q", rt.method, rt.path, query, device, user, body)
		if code >= 500 {
			t.Fatalf("%s: status %d %s", req, code, resp)
		}
		if !json.Valid(resp) {
			t.Fatalf("%s: status %d, body not JSON: %s", req, code, resp)
		}
		if rt.method == "GET" && after != before {
			t.Fatalf("%s changed the carts:\nbefore %s\nafter  %s", req, before, after)
		}
		if code < 400 {
			return
		}
		var er syncserver.ErrorResponse
		if err := json.Unmarshal(resp, &er); err != nil || er.Error == nil || er.Error.Message == "" {
			t.Fatalf("%s: status %d, not a typed error: %s", req, code, resp)
		}
		if !errorCodes[er.Error.Code] || syncserver.HTTPStatus(er.Error.Code) != code {
			t.Fatalf("%s: status %d with error code %q", req, code, er.Error.Code)
		}
		// out_of_order keeps the ops before the gap; every other
		// refusal changes nothing.
		if er.Error.Code != protocol.ErrOutOfOrder && after != before {
			t.Fatalf("%s refused (%d %s) but changed the carts:\nbefore %s\nafter  %s", req, code, resp, before, after)
		}
	})
}

// setup gives device 0's guest cart two lines and alice's cart one.
func (e *fuzzEnv) setup() {
	e.t.Helper()
	for _, p := range []struct{ token, user, body string }{
		{e.tokens[0], "", `{"ops":[{"client":"c0","seq":1,"kind":"add","sku":"mug","quantity":2},
			{"client":"c0","seq":2,"kind":"add","sku":"tea","options":{"size":"L"},"quantity":1}]}`},
		{e.tokens[1], "user:alice", `{"ops":[{"client":"c1","seq":1,"kind":"add","sku":"tea","quantity":3}]}`},
	} {
		if code, resp := e.do("POST", "/v1/cart/ops", "", p.token, p.user, []byte(p.body)); code != http.StatusOK {
			e.t.Fatalf("setup: %d %s", code, resp)
		}
	}
}
