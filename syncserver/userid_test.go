package syncserver_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/auth"
	"github.com/cartsync/cartsync/syncserver/memstore"
)

// TestBackendReachesEveryUserTheTokensAccept: a user id the shopper's side
// takes from a token's sub is one the storefront's backend can read and
// erase under the same id, byte for byte: a name in another Unicode form
// (as macOS writes it), with slashes. Before, the backend refused ids not
// in NFC, and answered 404 for those whose escaped slashes made an empty
// or dot segment once unescaped, so such users could not be forgotten. The NFC spelling of a
// decomposed sub is another user (subs are opaque), and "." and ".." are
// refused at login, since no URL path names them.
func TestBackendReachesEveryUserTheTokensAccept(t *testing.T) {
	secret := []byte("hs256secret-hs256secret-hs256secret-xx")
	v, err := auth.New(t.Context(), auth.Config{HS256Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	s := newShop(t, memstore.New(), func(c *syncserver.Config) { c.Users = v })
	add := func(sub string) int {
		t.Helper()
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("POST", s.hs.URL+"/v1/cart/ops", strings.NewReader(`{"ops":[{"client":"u","seq":1,"kind":"add","sku":"MUG","quantity":1}]}`))
		req.Header.Set("Authorization", "Bearer "+s.device())
		req.Header.Set("X-Cartsync-User", tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Slashes, also where a path would have an empty or dot segment once
	// the id is path-escaped (a URI as a sub has "//").
	for _, sub := range []string{"ju\u0308rgen", "tenant/7/ann", "https://idp.example/u/1", "ann/", "/ann", "a/./b", "a/.."} {
		if code := add(sub); code != 200 {
			t.Fatalf("shopper's add as %q: %d", sub, code)
		}
		path := "/v1/backend/users/" + url.PathEscape(sub) + "/cart"
		var bc syncserver.BackendCart
		if code := s.call("GET", path, testAPIKey, nil, &bc); code != 200 || bc.Cart == nil || qty(bc.Cart, "MUG") != 1 {
			t.Errorf("backend read of user %q: %d %+v, want the mug", sub, code, bc.Cart)
		}
		if nfc := cart.NormalizeText(sub); nfc != sub {
			var er syncserver.EraseResponse
			if code := s.call("DELETE", "/v1/backend/users/"+url.PathEscape(nfc)+"/cart", testAPIKey, nil, &er); code != 200 || len(er.Erased) != 0 {
				t.Errorf("erase of %q, another user than %q: %d %v, want 200 erasing nothing", nfc, sub, code, er.Erased)
			}
		}
		var er syncserver.EraseResponse
		if code := s.call("DELETE", path, testAPIKey, nil, &er); code != 200 || !slices.Contains(er.Erased, syncserver.UserCartID(sub)) {
			t.Errorf("erase of user %q: %d %v, want 200 naming %s", sub, code, er.Erased, syncserver.UserCartID(sub))
		}
	}
	for _, sub := range []string{".", ".."} {
		if code := add(sub); code != 401 {
			t.Errorf("shopper's add as %q: %d, want 401 (no URL path names that user)", sub, code)
		}
	}
	for _, bad := range []string{"a%00b", "%E2%80%8B"} { // a NUL, a zero-width space
		var er syncserver.ErrorResponse
		if code := s.call("GET", "/v1/backend/users/"+bad+"/cart", testAPIKey, nil, &er); code != 400 || er.Error == nil || er.Error.Code != protocol.ErrInvalid {
			t.Errorf("backend read of user %q: %d %+v, want 400 invalid", bad, code, er.Error)
		}
	}
}
