package syncserver_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/memstore"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// TestWebsocketOriginComparedWhole dials the websocket for real with
// several Origin headers: an allowed origin passes only with its scheme
// and port; http:// does not pass for https://.
func TestWebsocketOriginComparedWhole(t *testing.T) {
	srv, err := syncserver.New(context.Background(), syncserver.Config{
		Store:          memstore.New(),
		AllowedOrigins: []string{"https://shop.example.com", "https://*.stores.example", "http://127.0.0.1:8081/"},
	})
	if err != nil {
		t.Fatal(err)
	}
	storetest.StopOnCleanup(t, srv)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	url := "ws" + strings.TrimPrefix(hs.URL, "http") + "/v1/sync"
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{hs.URL, true},
		{"https://shop.example.com", true},
		{"https://shop.example.com:443", true},
		{"https://SHOP.example.com", true},
		{"http://shop.example.com", false},
		{"https://shop.example.com:8443", false},
		{"https://evil.example.com", false},
		{"https://shop.example.com.evil.example", false},
		{"https://a.stores.example", true},
		{"http://a.stores.example", false},
		{"https://stores.example", false},
		{"http://127.0.0.1:8081", true},
		{"https://127.0.0.1:8081", false},
		{"http://127.0.0.1:8082", false},
		{"null", false},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			c, resp, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: h})
			if tt.ok {
				if err != nil {
					t.Fatalf("dial from %q: %v", tt.origin, err)
				}
				c.CloseNow()
				return
			}
			if err == nil {
				c.CloseNow()
				t.Fatalf("dial from %q accepted", tt.origin)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("dial from %q: %v, want 403", tt.origin, err)
			}
		})
	}
}

func TestBadAllowedOriginRefusedAtStart(t *testing.T) {
	for _, o := range []string{"shop.example.com", "ftp://shop.example.com", "https://shop.example.com/path", "https://*shop.example.com", "http://:80", "https://:8443"} {
		if _, err := syncserver.New(context.Background(), syncserver.Config{Store: memstore.New(), AllowedOrigins: []string{o}}); err == nil {
			t.Errorf("New accepted the allowed origin %q", o)
		}
	}
}
