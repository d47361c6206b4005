//go:build js

package syncclient

import (
	"context"
	"io"
	"net/http"
	"testing"
)

// The browser's fetch answers a request as net/http would: status, body,
// headers; a cancelled request ends with the context's error.
func TestFetchDoer(t *testing.T) {
	req, err := http.NewRequest(http.MethodGet, "data:text/plain;charset=utf-8,hello%20cart", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := defaultDoer().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "hello cart" || resp.Header.Get("Content-Type") != "text/plain;charset=utf-8" {
		t.Fatalf("fetch = %d %q, Content-Type %q; want 200 \"hello cart\" text/plain;charset=utf-8", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, "data:text/plain,x", nil)
	if _, err := defaultDoer().Do(req); err == nil {
		t.Fatal("a cancelled request succeeded")
	}
}
