package syncclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The checkout handoff: the shopper confirmed the cart at a version, and the
// server snapshots it for the storefront's checkout (POST /v1/checkout).

// maxCheckoutBody bounds the server's answer to a checkout: a checkout or a
// cart at the limits, with room to spare.
const maxCheckoutBody = 4 * protocol.MaxServerMessageBytes

// ErrNoDevice is returned by Checkout before the engine has a device token
// (it has never connected): the server has no cart for it yet.
var ErrNoDevice = errors.New("syncclient: no device token yet")

// CheckoutConflict is Checkout's error when the server would not check out
// the version the shopper reviewed: the cart changed since, or the catalog
// changed under a line (Err.Code protocol.ErrCartChanged), or it is empty
// (protocol.ErrCartEmpty). Cart is the cart as it is now, with its notices.
type CheckoutConflict struct {
	Err  *protocol.Error
	Cart *cart.Cart
}

func (c *CheckoutConflict) Error() string { return "syncclient: checkout: " + c.Err.Error() }

// Unwrap returns the server's error.
func (c *CheckoutConflict) Unwrap() error { return c.Err }

// checkoutResponse is the body of the server's answer to POST /v1/checkout.
type checkoutResponse struct {
	Checkout *cart.Checkout  `json:"checkout"`
	Error    *protocol.Error `json:"error"`
	Cart     *cart.Cart      `json:"cart"`
}

// Checkout asks the server (Config.BaseURL) to check out the cart at
// version, the confirmed version the shopper reviewed, as this device and
// the user the engine presents (if any). Call it once Flush has returned:
// a cart with edits still pending is not the one reviewed. It returns the
// open checkout; a *CheckoutConflict when the cart is not at that version
// any more, or the catalog changed under it, or it is empty (the engine
// then shows the cart the server sent, unless edits are pending); the
// server's *protocol.Error for any other refusal; or the network's error.
func (e *Engine) Checkout(ctx context.Context, version uint64) (*cart.Checkout, error) {
	if e.cfg.BaseURL == "" {
		return nil, errors.New("syncclient: Config.BaseURL is required for Checkout")
	}
	if err := e.reload(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	token, userSet, user := e.m.token, e.m.userSet, e.m.userToken
	e.mu.Unlock()
	if token == "" {
		return nil, ErrNoDevice
	}
	if !userSet && e.cfg.UserToken != nil {
		user = e.cfg.UserToken()
	}
	body, _ := json.Marshal(struct {
		Version uint64 `json:"version"`
	}{version})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(e.cfg.BaseURL, "/")+"/v1/checkout", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("syncclient: checkout: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if user != "" {
		req.Header.Set("X-Cartsync-User", user)
	}
	resp, err := e.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("syncclient: checkout: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckoutBody))
	if err != nil {
		return nil, fmt.Errorf("syncclient: checkout: read the answer: %w", err)
	}
	var out checkoutResponse
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("syncclient: checkout: HTTP %d: %w", resp.StatusCode, err)
	}
	switch {
	case resp.StatusCode == http.StatusCreated && out.Checkout != nil:
		e.log.Info("checkout", logkey.Checkout, out.Checkout.ID, logkey.Version, version)
		return out.Checkout, nil
	case resp.StatusCode == http.StatusConflict && out.Error != nil && out.Cart != nil:
		e.log.Info("checkout refused", logkey.Code, out.Error.Code, logkey.Version, version, logkey.Current, out.Cart.Version)
		if err := e.takeCart(ctx, out.Cart); err != nil {
			e.log.Warn("store the cart of a refused checkout", logkey.Err, err)
		}
		return nil, &CheckoutConflict{Err: out.Error, Cart: out.Cart}
	case out.Error != nil:
		return nil, fmt.Errorf("syncclient: checkout: %w", out.Error)
	}
	return nil, fmt.Errorf("syncclient: checkout: unexpected answer HTTP %d", resp.StatusCode)
}

// takeCart shows a cart the server sent outside the connection, if it is a
// version of the confirmed cart at least as new and no edit of it is
// pending: without the acked seqs of a sync reply the engine could not
// tell which pending ops it already holds. Otherwise the connection brings
// the cart.
func (e *Engine) takeCart(ctx context.Context, c *cart.Cart) error {
	e.mu.Lock()
	m := e.m
	ok := c.ID == m.confirmed.ID && c.Version >= m.confirmed.Version && len(m.pending) == m.waiting
	c = m.ownedCopy(c)
	e.mu.Unlock()
	if !ok {
		return nil
	}
	if err := e.store.Confirm(ctx, c, nil); err != nil {
		return fmt.Errorf("store the cart: %w", err)
	}
	return e.reload(ctx)
}
