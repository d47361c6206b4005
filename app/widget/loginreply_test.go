//go:build !js || !wasm

package widget

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// tokenUsers takes "user:<id>" and answers token_expired to "expired:<id>",
// as the server's JWT verifier does.
type tokenUsers struct{}

func (tokenUsers) VerifyUser(_ context.Context, tok string) (string, error) {
	if strings.HasPrefix(tok, "expired:") {
		return "", protocol.Errorf(protocol.ErrTokenExpired, "user token expired: log in again")
	}
	if u, ok := strings.CutPrefix(tok, "user:"); ok && u != "" {
		return u, nil
	}
	return "", errors.New("bad token")
}

// newSyncingClient returns a test client whose engine runs against a real
// sync server.
func newSyncingClient(t *testing.T, url string) (*client, *syncclient.Engine) {
	t.Helper()
	c, _, _ := newTestClient(t)
	eng, err := syncclient.New(syncclient.Config{
		Storage:     syncclient.NewMemStorage(),
		Dial:        syncclient.WebsocketDialer(url),
		Logger:      discardLogger(),
		OnChange:    c.onChange,
		BackoffBase: 10 * time.Millisecond, BackoffCap: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.eng.Store(eng)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, eng
}

// reply runs a bridge request as onMessage does, waiting for a later
// answer, and returns the reply as posted.
func reply(t *testing.T, c *client, s string) string {
	t.Helper()
	r := request1(t, s)
	result, err := c.exec(context.Background(), r)
	if answer, ok := result.(later); ok {
		result, err = answer(context.Background())
	}
	return string(encodeReply(r.id, result, err))
}

// TestLoginReplies: login resolves with the server's answer (the merge
// and the account's cart), rejects with the server's code when the token
// is refused, and resolves as queued without a connection; logout resolves
// once this device's cart is back.
func TestLoginReplies(t *testing.T) {
	srv, err := syncserver.New(context.Background(), syncserver.Config{Store: memstore.New(), Users: tokenUsers{}})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/sync"
	c, eng := newSyncingClient(t, url)
	ctx := context.Background()
	if err := eng.Add(ctx, "TEE", nil, 2, &cart.Details{Name: "T-shirt"}); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := eng.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	guest := eng.Snapshot().Cart.ID

	var res struct {
		Result *loginData  `json:"result"`
		Error  *replyError `json:"error"`
	}
	got := reply(t, c, `{"cartsync":1,"id":1,"method":"login","args":["user:alice",{"policy":"merge"}]}`)
	if err := json.Unmarshal([]byte(got), &res); err != nil || res.Result == nil {
		t.Fatalf("login reply %s", got)
	}
	r := res.Result
	if r.Status != loginDone || r.Merge == nil || r.Merge.Status != protocol.MergeMerged || r.Merge.Items != 2 || r.Merge.Policy != "merge" ||
		r.Cart.ID != syncserver.UserCartID("alice") || r.Cart.Items != 2 || r.Cart.Version != r.Merge.Version {
		t.Fatalf("login reply %s, want done with the merge of 2 items and alice's cart", got)
	}

	// Again, with the server's default policy: a new hello, nothing new
	// merged.
	res.Result = nil
	got = reply(t, c, `{"cartsync":1,"id":2,"method":"login","args":["user:alice"]}`)
	if json.Unmarshal([]byte(got), &res) != nil || res.Result == nil || res.Result.Status != loginDone ||
		res.Result.Merge == nil || res.Result.Merge.Status != protocol.MergeAlready || res.Result.Cart.Items != 2 {
		t.Fatalf("second login reply %s", got)
	}

	// A refused token rejects with the server's code.
	res.Result = nil
	got = reply(t, c, `{"cartsync":1,"id":3,"method":"login","args":["expired:alice"]}`)
	if json.Unmarshal([]byte(got), &res) != nil || res.Error == nil || res.Error.Code != string(protocol.ErrTokenExpired) {
		t.Fatalf("expired login reply %s, want error token_expired", got)
	}

	// Logout: done once this device's own (fresh) cart is shown.
	res.Error = nil
	got = reply(t, c, `{"cartsync":1,"id":4,"method":"logout","args":[]}`)
	if json.Unmarshal([]byte(got), &res) != nil || res.Result == nil || res.Result.Status != loginDone || res.Result.Merge != nil ||
		!strings.HasPrefix(res.Result.Cart.ID, "g_") || res.Result.Cart.ID == guest || res.Result.Cart.Items != 0 {
		t.Fatalf("logout reply %s, want done on a fresh guest cart", got)
	}

	// A login superseded by a logout before the server answered.
	r1 := request1(t, `{"cartsync":1,"id":5,"method":"login","args":["user:bob"]}`)
	first, _ := c.exec(ctx, r1)
	r2 := request1(t, `{"cartsync":1,"id":6,"method":"logout","args":[]}`)
	second, _ := c.exec(ctx, r2)
	_, err1 := first.(later)(ctx)
	if re := errorOf(err1); err1 == nil || re.Code != codeSuperseded {
		t.Fatalf("superseded login: %v, want %s", err1, codeSuperseded)
	}
	if v, err := second.(later)(ctx); err != nil || v.(loginData).Status != loginDone {
		t.Fatalf("logout after it: %+v, %v", v, err)
	}

	// Again exactly as before: nothing to send, answered at once.
	res.Result = nil
	got = reply(t, c, `{"cartsync":1,"id":7,"method":"logout","args":[]}`)
	if json.Unmarshal([]byte(got), &res) != nil || res.Result == nil || res.Result.Status != loginDone {
		t.Fatalf("repeated logout reply %s", got)
	}

	// No server: queued once the wait is over (shortened here), with
	// the cart as it is.
	hs.CloseClientConnections()
	hs.Close()
	defer func(d time.Duration) { loginWait = d }(loginWait)
	loginWait = 300 * time.Millisecond
	res.Result = nil
	got = reply(t, c, `{"cartsync":1,"id":8,"method":"login","args":["user:alice"]}`)
	if json.Unmarshal([]byte(got), &res) != nil || res.Result == nil || res.Result.Status != loginQueued || res.Result.Merge != nil ||
		!strings.HasPrefix(res.Result.Cart.ID, "g_") {
		t.Fatalf("login without a server: %s, want queued", got)
	}
	if eng.Snapshot().NeedsLogin {
		t.Error("a queued login counts as refused")
	}
}
