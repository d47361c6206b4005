package webui

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
)

// backendClient calls the cart server's backend API as the storefront's
// servers do: server to server, with the API key.
type backendClient struct {
	base string // the cart server's base URL, without a trailing slash
	key  string
	http *http.Client
}

func newBackendClient(cartServer, apiKey string) (*backendClient, error) {
	if !httpURL(cartServer) {
		return nil, fmt.Errorf("demo storefront: cart server %q is not an http(s) URL", cartServer)
	}
	return &backendClient{base: strings.TrimRight(cartServer, "/"), key: apiKey, http: &http.Client{Timeout: 10 * time.Second}}, nil
}

// apiError is an answer of the backend API that is not a success.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("cart server: %d %s: %s", e.Status, e.Code, e.Message)
}

// maxAPIAnswer bounds what is read of an answer.
const maxAPIAnswer = 16 << 20

// do sends in (if not nil) as JSON to the backend API's path and decodes
// the answer into out (if not nil). An answer that is not 2xx is an
// *apiError.
func (c *backendClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		var eb demoError
		json.Unmarshal(b, &eb)
		if eb.Error.Message == "" {
			eb.Error.Message = http.StatusText(resp.StatusCode)
		}
		return &apiError{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
	}
	return nil
}

// checkoutPath is the backend API's path of a checkout, with suffix.
func checkoutPath(id, suffix string) string {
	return "/v1/backend/checkouts/" + url.PathEscape(id) + suffix
}

// checkout reads a checkout: the snapshot the cart server keeps.
func (c *backendClient) checkout(ctx context.Context, id string) (*checkoutRead, error) {
	var co checkoutRead
	if err := c.do(ctx, http.MethodGet, checkoutPath(id, ""), nil, &co); err != nil {
		return nil, err
	}
	return &co, nil
}

// checkoutRead is a checkout as the backend API reads it: the snapshot,
// and the cart it lives in now (a guest's checkout is taken by the user
// cart at a login).
type checkoutRead struct {
	cart.Checkout
	CurrentCartID string `json:"current_cart_id,omitempty"`
	CartMoved     *bool  `json:"cart_moved,omitempty"`
}

// cartNow is the cart the checkout lives in now.
func (co *checkoutRead) cartNow() string { return cmp.Or(co.CurrentCartID, co.CartID) }

// complete completes a checkout with the storefront's order reference;
// completing a completed checkout again changes nothing, and answers it
// with the order it was completed with.
func (c *backendClient) complete(ctx context.Context, id, order string) (*cart.Checkout, error) {
	var co cart.Checkout
	if err := c.do(ctx, http.MethodPost, checkoutPath(id, "/complete"), map[string]string{"order": order}, &co); err != nil {
		return nil, err
	}
	return &co, nil
}

// cancel cancels an open checkout.
func (c *backendClient) cancel(ctx context.Context, id string) (*cart.Checkout, error) {
	var co cart.Checkout
	if err := c.do(ctx, http.MethodPost, checkoutPath(id, "/cancel"), nil, &co); err != nil {
		return nil, err
	}
	return &co, nil
}

// cart reads a cart by its id.
func (c *backendClient) cart(ctx context.Context, id string) (*cart.Cart, error) {
	var bc struct {
		Cart *cart.Cart `json:"cart"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/backend/carts/"+url.PathEscape(id), nil, &bc); err != nil {
		return nil, err
	}
	if bc.Cart == nil {
		return nil, errors.New("cart server: a cart answer without a cart")
	}
	return bc.Cart, nil
}

// maxCatalogPages bounds how many pages of the catalog are read: the demo
// catalog has a handful of items.
const maxCatalogPages = 20

// items lists the whole catalog, in SKU order.
func (c *backendClient) items(ctx context.Context) ([]cart.Item, error) {
	var all []cart.Item
	after := ""
	for range maxCatalogPages {
		var page struct {
			Items []cart.Item `json:"items"`
			Next  string      `json:"next"`
		}
		if err := c.do(ctx, http.MethodGet, "/v1/backend/catalog/items?limit=1000&after="+url.QueryEscape(after), nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.Next == "" || page.Next == after {
			return all, nil
		}
		after = page.Next
	}
	return all, nil
}

// putItems uploads items: each replaces the catalog's item of its SKU.
func (c *backendClient) putItems(ctx context.Context, items []cart.Item) error {
	return c.do(ctx, http.MethodPut, "/v1/backend/catalog/items", map[string][]cart.Item{"items": items}, nil)
}

// relayError answers the browser for a failed call to the backend API:
// the cart server's refusals keep their status and message, except that
// a refused API key or a failure of the cart server is the demo's own
// failure (502).
func (d *demo) relayError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusUnauthorized && ae.Status != http.StatusForbidden:
		writeDemoError(w, ae.Status, ae.Code, "%s", ae.Message)
	case errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden):
		d.log.Error("demo storefront: the cart server refused the API key", logkey.Path, r.URL.Path, logkey.Err, err)
		writeDemoError(w, http.StatusBadGateway, "bad_gateway", "the cart server refused the demo's API key")
	default:
		d.log.Error("demo storefront: backend API", logkey.Path, r.URL.Path, logkey.Err, err)
		writeDemoError(w, http.StatusBadGateway, "bad_gateway", "the cart server did not answer as expected; retry")
	}
}

// backend returns the client of the backend API, or answers 503 and nil
// when the demo has no API key.
func (d *demo) backend(w http.ResponseWriter) *backendClient {
	if d.api == nil {
		writeDemoError(w, http.StatusServiceUnavailable, "no_api_key", "the demo storefront has no API key for the cart server (start it with -api-keys)")
	}
	return d.api
}
