package syncserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/syncserver"
)

// TestErrorsCarryTheID: every error about a message the server could read
// carries that message's id, before and after hello (docs/protocol.md,
// Messages): a client matching replies by id must not wait forever.
func TestErrorsCarryTheID(t *testing.T) {
	_, hs := newServer(t)
	manyOps := `[` + strings.TrimSuffix(strings.Repeat(`{"client":"c","seq":1,"kind":"clear"},`, protocol.MaxOpsPerPush+1), ",") + `]`
	manyClients := `[` + strings.TrimSuffix(strings.Repeat(`"c",`, protocol.MaxClientsPerSync+1), ",") + `]`
	before := []struct {
		name string
		raw  string
		code protocol.ErrorCode
	}{
		{"unsupported version", `{"type":"hello","id":"h1","protocol":99,"client":"c"}`, protocol.ErrUnsupportedVersion},
		{"hello without protocol", `{"type":"hello","id":"h1","client":"c"}`, protocol.ErrInvalid},
		{"bad client id", `{"type":"hello","id":"h1","protocol":2,"client":""}`, protocol.ErrInvalid},
		{"bad policy", `{"type":"hello","id":"h1","protocol":2,"client":"c","user_token":"t","policy":"sum"}`, protocol.ErrInvalid},
		{"unknown type before hello", `{"type":"teleport","id":"h1"}`, protocol.ErrUnknownType},
	}
	for _, tt := range before {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, hs)
			c.sendRaw(tt.raw)
			m := c.expect(protocol.TypeError)
			if m.Error.Code != tt.code || m.ID != "h1" {
				t.Fatalf("error %+v with id %q, want %s with id h1", m.Error, m.ID, tt.code)
			}
		})
	}

	c := dial(t, hs)
	c.hello("tab", "")
	after := []struct {
		name string
		raw  string
		code protocol.ErrorCode
		id   string
	}{
		{"empty push", `{"type":"push","id":"p1","ops":[]}`, protocol.ErrInvalid, "p1"},
		{"too many ops", `{"type":"push","id":"p2","ops":` + manyOps + `}`, protocol.ErrTooLarge, "p2"},
		{"too many sync clients", `{"type":"sync","id":"s1","clients":` + manyClients + `}`, protocol.ErrTooLarge, "s1"},
		{"unknown type", `{"type":"teleport","id":"x1"}`, protocol.ErrUnknownType, "x1"},
		{"field of the wrong type", `{"type":"push","id":"p3","ops":"many"}`, protocol.ErrMalformed, "p3"},
		{"not JSON: no id to give", `{"type":"push","id":"p4",`, protocol.ErrMalformed, ""},
	}
	for _, tt := range after {
		t.Run(tt.name, func(t *testing.T) {
			c.sendRaw(tt.raw)
			m := c.expect(protocol.TypeError)
			if m.Error.Code != tt.code || m.ID != tt.id {
				t.Fatalf("error %+v with id %q, want %s with id %q", m.Error, m.ID, tt.code, tt.id)
			}
		})
	}
}

// TestGarbageCloseCode: a peer that keeps sending bad messages is closed
// with 1008 (policy violation), not 1001, which means the server is going
// away and invites an immediate reconnect.
func TestGarbageCloseCode(t *testing.T) {
	_, hs := newServer(t)
	c := dial(t, hs)
	c.hello("tab", "")
	for i := 0; i < 10; i++ {
		c.sendRaw("garbage")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, _, err := c.conn.Read(ctx)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			t.Fatal("server kept the connection open")
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation {
			t.Fatalf("closed with %v, want status 1008 (policy violation)", err)
		}
		return
	}
}

// TestClientPongTakenQuietly: the protocol lets either side answer a
// ping, so a client's pong is no bad message.
func TestClientPongTakenQuietly(t *testing.T) {
	_, hs := newServer(t)
	c := dial(t, hs)
	c.hello("tab", "")
	c.sendRaw(`{"type":"pong","t":1764200000000}`)
	c.sendRaw(`{"type":"ping","id":"p1","t":1764200000001}`)
	if m := c.read(); m.Type != protocol.TypePong || m.ID != "p1" {
		t.Fatalf("after a client's pong and a ping: %s %+v, want only the pong to p1", m.Type, m.Error)
	}
}

// TestSyncWithoutUpgradeTyped: /v1/sync without a websocket upgrade gets
// 426 with the typed error body.
func TestSyncWithoutUpgradeTyped(t *testing.T) {
	_, hs := newServer(t)
	resp, b := httpDo(t, "GET", hs.URL+"/v1/sync", "", nil)
	var body syncserver.ErrorResponse
	if err := json.Unmarshal(b, &body); resp.StatusCode != http.StatusUpgradeRequired || err != nil || body.Error == nil || body.Error.Code != protocol.ErrInvalid {
		t.Fatalf("GET /v1/sync without upgrade: %d %s, want 426 with a typed invalid error", resp.StatusCode, b)
	}
}
