package syncserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
)

// httpApp is a native app that speaks only HTTP: its device token and,
// once logged in, its user token.
type httpApp struct {
	t    *testing.T
	hs   *httptest.Server
	dev  string
	user string
}

func newHTTPApp(t *testing.T, hs *httptest.Server) *httpApp {
	t.Helper()
	resp, body := httpDo(t, "POST", hs.URL+"/v1/devices", "", nil)
	var dev syncserver.DeviceResponse
	if resp.StatusCode != 201 || json.Unmarshal(body, &dev) != nil {
		t.Fatalf("POST /v1/devices = %d %s", resp.StatusCode, body)
	}
	return &httpApp{t: t, hs: hs, dev: dev.DeviceToken}
}

// do sends a request with the app's tokens and decodes a 2xx answer into
// out, or the error body; it returns the status and the error, if any.
func (a *httpApp) do(method, path string, body string, out any) (int, *protocol.Error) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.hs.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.dev)
	if a.user != "" {
		req.Header.Set("X-Cartsync-User", a.user)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var er syncserver.ErrorResponse
		if err := json.NewDecoder(resp.Body).Decode(&er); err != nil || er.Error == nil {
			a.t.Fatalf("%s %s = %d without an error body", method, path, resp.StatusCode)
		}
		return resp.StatusCode, er.Error
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			a.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

func (a *httpApp) push(ops ...cart.Op) (int, *protocol.Error, syncserver.OpsResponse) {
	a.t.Helper()
	b, _ := json.Marshal(syncserver.OpsRequest{Ops: ops})
	var or syncserver.OpsResponse
	code, e := a.do("POST", "/v1/cart/ops", string(b), &or)
	return code, e, or
}

// TestHTTPOnlyLoginChoose: an app that never opens the websocket logs in
// with policy choose, sees both carts, picks one, and carries on: the
// guest ops it still had queued reach the user cart once.
func TestHTTPOnlyLoginChoose(t *testing.T) {
	_, hs, _, _ := newLoginServer(t, cart.PolicyMerge)
	// The user's cart, from another device.
	other := dial(t, hs)
	other.login("b1", guestWith(t, hs, "b0"), "user:alice", "")
	other.send(&protocol.Message{Type: protocol.TypePush, Ops: []cart.Op{addOp("b1", 1, "MUG", 2)}})
	other.expect(protocol.TypeAck)

	app := newHTTPApp(t, hs)
	var guest syncserver.CartResponse
	app.do("GET", "/v1/cart", "", &guest)
	op1 := addOp("app", 1, "TEE", 1)
	op2 := addOp("app", 2, "MUG", 1)
	if code, e, _ := app.push(op1); code != 200 {
		t.Fatalf("guest push = %d %v", code, e)
	}
	op2.Cart = guest.Cart.ID // queued on the guest cart, not sent before the login

	app.user = "user:alice"
	var lr syncserver.LoginResponse
	if code, e := app.do("POST", "/v1/login", `{"policy":"choose"}`, &lr); code != 200 {
		t.Fatalf("login = %d %v", code, e)
	}
	userID := syncserver.UserCartID("alice")
	if lr.Merge == nil || lr.Merge.Status != protocol.MergeChoose || qty(lr.Merge.Guest, "TEE") != 1 || qty(lr.Merge.User, "MUG") != 2 {
		t.Fatalf("login with choose = %+v, want both carts", lr.Merge)
	}
	if lr.Cart.ID != userID || qty(lr.Cart, "TEE") != 0 || lr.User != "alice" || lr.GuestCartID != guest.Cart.ID {
		t.Fatalf("login answer %+v, want alice's cart unchanged and the guest cart named", lr)
	}
	// While the choice is open the guest cart's ops are not the user's
	// (the app keeps them queued).
	if code, _, _ := app.push(op2); code == 200 {
		t.Fatal("a guest op was applied to the user cart before the choice")
	}
	for _, body := range []string{`{"policy":"choose"}`, `{}`, `{"policy":"sum"}`} {
		if code, e := app.do("POST", "/v1/login/choose", body, nil); code != 400 || e.Code != protocol.ErrInvalid {
			t.Fatalf("choose %s = %d %v, want 400 invalid", body, code, e)
		}
	}

	var cr syncserver.LoginResponse
	if code, e := app.do("POST", "/v1/login/choose", `{"policy":"merge"}`, &cr); code != 200 {
		t.Fatalf("choose = %d %v", code, e)
	}
	if cr.Merge == nil || cr.Merge.Status != protocol.MergeMerged || cr.Merge.Result.Policy != cart.PolicyMerge ||
		qty(cr.Cart, "TEE") != 1 || qty(cr.Cart, "MUG") != 2 || cr.Merge.Version != cr.Cart.Version {
		t.Fatalf("choose merge = %+v cart %+v", cr.Merge, cr.Cart)
	}
	// The queued guest op now goes to the user cart, once; a replay of
	// the op the guest cart took is a duplicate.
	code, e, or := app.push(op2)
	if code != 200 || or.Results[0].Status != protocol.StatusApplied || qty(or.Cart, "MUG") != 3 {
		t.Fatalf("guest op after the choice = %d %v %+v", code, e, or)
	}
	op1.Cart = guest.Cart.ID
	if _, _, or := app.push(op1); or.Results[0].Status != protocol.StatusDuplicate || qty(or.Cart, "TEE") != 1 {
		t.Fatalf("replayed guest op = %+v", or)
	}
	// A second pick changes nothing.
	if code, e := app.do("POST", "/v1/login/choose", `{"policy":"replace"}`, &cr); code != 200 || cr.Merge.Status != protocol.MergeAlready || qty(cr.Cart, "MUG") != 3 {
		t.Fatalf("second choose = %d %v %+v", code, e, cr.Merge)
	}
	// And the other device saw the merge.
	for {
		m := other.read()
		if m.Type == protocol.TypeCart && m.Cart.Version >= 2 && qty(m.Cart, "TEE") == 1 {
			break
		}
	}

	// Guests cannot choose.
	app.user = ""
	if code, e := app.do("POST", "/v1/login/choose", `{"policy":"merge"}`, nil); code != 401 || e.Code != protocol.ErrUnauthorized {
		t.Fatalf("choose as a guest = %d %v, want 401 unauthorized", code, e)
	}
}

// TestHTTPExpiredCart: every cart endpoint answers an expired cart with
// 410 cart_expired naming it, never an empty cart.
func TestHTTPExpiredCart(t *testing.T) {
	srv, hs, _, clk := newLoginServer(t, cart.PolicyMerge)
	app := newHTTPApp(t, hs)
	var guest syncserver.CartResponse
	app.do("GET", "/v1/cart", "", &guest)
	if code, e, _ := app.push(addOp("app", 1, "TEE", 1)); code != 200 {
		t.Fatalf("push = %d %v", code, e)
	}
	clk.add(31 * 24 * time.Hour)
	if n, err := srv.Purge(context.Background(), 10); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	for _, path := range []string{"/v1/cart", "/v1/cart?clients=app", "/v1/cart/changes?since=0"} {
		code, e := app.do("GET", path, "", nil)
		if code != http.StatusGone || e.Code != protocol.ErrCartExpired || e.Cart != guest.Cart.ID {
			t.Errorf("GET %s = %d %+v, want 410 cart_expired for %s", path, code, e, guest.Cart.ID)
		}
	}
	if code, e, _ := app.push(addOp("app", 2, "TEE", 1)); code != http.StatusGone || e.Code != protocol.ErrCartExpired || e.Cart != guest.Cart.ID {
		t.Errorf("POST /v1/cart/ops = %d %+v, want 410 cart_expired", code, e)
	}
}

// TestHTTPCartTooManyClients: a device's cart read asking about more
// client ids than a sync may is answered 413 too_large, as its sync over
// the websocket is, so that the app splits the list (protocol.md).
func TestHTTPCartTooManyClients(t *testing.T) {
	_, hs, _, _ := newLoginServer(t, cart.PolicyMerge)
	app := newHTTPApp(t, hs)
	many := strings.Repeat("c,", protocol.MaxClientsPerSync) + "c"
	if code, e := app.do("GET", "/v1/cart?clients="+many, "", nil); code != 413 || e.Code != protocol.ErrTooLarge {
		t.Fatalf("GET /v1/cart with 65 client ids = %d %+v, want 413 too_large", code, e)
	}
	if code, e := app.do("GET", "/v1/cart?clients="+many[2:], "", nil); code != 200 {
		t.Fatalf("GET /v1/cart with 64 client ids = %d %+v", code, e)
	}
}
