//go:build !js

package syncclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The engine over a real websocket, natively.
func TestWebsocketDialer(t *testing.T) {
	srv := newFakeServer(t)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		srv.serve(wsConn{c})
	}))
	defer hs.Close()
	e := newEngine(t, srv, NewMemStorage(), func(c *Config) {
		c.Dial = WebsocketDialer(strings.Replace(hs.URL, "http://", "ws://", 1))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	must(t, e.Add(ctx, "mug", map[string]string{"size": "L"}, 2, nil))
	must(t, e.Flush(ctx))
	if got, want := srv.summary(), "mug?size=L=2"; got != want {
		t.Errorf("server has %q, want %q", got, want)
	}
	cancel()
	<-done
}
