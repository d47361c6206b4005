package webui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
)

// The demo's catalog: the products of assets/demo/index.html, at its prices,
// uploaded to the cart server so that it prices carts and checkouts, holds
// them to the stock, and tells open carts when the admin page changes an
// item.

// demoCatalog returns the demo's items, with images under demoURL (the
// demo storefront's base URL): the widget shows them from the cart
// server's origin, so they must be absolute URLs.
func demoCatalog(demoURL string) []cart.Item {
	base := strings.TrimRight(demoURL, "/")
	n := func(v int) *int { return &v }
	return []cart.Item{
		{SKU: "TEE-01", Name: "Organic cotton tee", Image: base + "/tee.svg", Price: 1999, Currency: "EUR", Sellable: true, Stock: n(40)},
		{SKU: "MUG-01", Name: "Stoneware mug", Image: base + "/mug.svg", Price: 1450, Currency: "EUR", Sellable: true, Stock: n(3)},
		{SKU: "TOTE-01", Name: "Canvas tote bag", Image: base + "/tote.svg", Price: 2400, Currency: "EUR", Sellable: true, Stock: n(15), MaxPerOrder: n(2)},
		{SKU: "CAP-01", Name: "Merino wool cap", Image: base + "/cap.svg", Price: 2200, Currency: "EUR", Sellable: true, Stock: n(3)},
		{SKU: "SOCKS-01", Name: "Striped socks", Image: base + "/socks.svg", Price: 990, Currency: "EUR", Sellable: true},
		{SKU: "NOTE-01", Name: "Dot-grid notebook", Image: base + "/notebook.svg", Price: 1200, Currency: "EUR", Sellable: true, Stock: n(60)},
	}
}

// seedPatience is how long SeedDemoCatalog waits for the cart server.
const seedPatience = 15 * time.Second

// SeedDemoCatalog uploads the demo storefront's catalog to the cart server
// at cartServer with the API key apiKey, replacing the demo's items there
// (an admin's changes included). demoURL is the demo storefront's base
// URL, such as http://127.0.0.1:8081, under which the product images are.
// While the cart server does not answer, or answers 5xx or 429, it tries
// again for up to 15 seconds (or until ctx ends).
func SeedDemoCatalog(ctx context.Context, cartServer, apiKey, demoURL string) error {
	api, err := newBackendClient(cartServer, apiKey)
	if err != nil {
		return err
	}
	if demoURL != "" && !httpURL(demoURL) {
		return fmt.Errorf("demo storefront: %q is not an http(s) URL", demoURL)
	}
	items := demoCatalog(demoURL)
	deadline := time.Now().Add(seedPatience)
	wait := 100 * time.Millisecond
	for {
		err := api.putItems(ctx, items)
		if err == nil {
			return nil
		}
		if !retryable(err) || time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("demo storefront: upload the catalog: %w", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("demo storefront: upload the catalog: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// retryable reports whether a failed call may succeed later: the server
// did not answer, or answered that it is busy or failing.
func retryable(err error) bool {
	var ae *apiError
	if !errors.As(err, &ae) {
		return true
	}
	return ae.Status >= 500 || ae.Status == http.StatusTooManyRequests
}

// catalogList answers GET /demo/catalog and GET /demo/admin/items.
type catalogList struct {
	Items []cart.Item `json:"items"`
}

func (d *demo) serveCatalog(w http.ResponseWriter, r *http.Request) {
	api := d.backend(w)
	if api == nil {
		return
	}
	items, err := api.items(r.Context())
	if err != nil {
		d.relayError(w, r, err)
		return
	}
	if items == nil {
		items = []cart.Item{}
	}
	writeDemoJSON(w, http.StatusOK, catalogList{Items: items})
}

// itemChange is the body of POST /demo/admin/items: one item's SKU and
// the fields to change; a field left out stays as it is.
type itemChange struct {
	SKU string `json:"sku"`
	// Price is the unit price in minor units of the item's currency.
	Price    *int64 `json:"price"`
	Sellable *bool  `json:"sellable"`
	// Stock is a number, or null for no limit.
	Stock json.RawMessage `json:"stock"`
}

// maxItemChange bounds the body of an item change.
const maxItemChange = 16 << 10

// serveItemChange changes one item of the catalog through the backend API:
// the cart server tells every open cart that holds it.
func (d *demo) serveItemChange(w http.ResponseWriter, r *http.Request) {
	api := d.backend(w)
	if api == nil {
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxItemChange))
	if err != nil {
		writeDemoError(w, http.StatusRequestEntityTooLarge, "too_large", "the change is too large")
		return
	}
	var ch itemChange
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ch); err != nil || ch.SKU == "" {
		writeDemoError(w, http.StatusBadRequest, "invalid", "the body must be {\"sku\", and any of \"price\", \"stock\", \"sellable\"}")
		return
	}
	items, err := api.items(r.Context())
	if err != nil {
		d.relayError(w, r, err)
		return
	}
	var it *cart.Item
	for i := range items {
		if items[i].SKU == ch.SKU {
			it = &items[i]
		}
	}
	if it == nil {
		writeDemoError(w, http.StatusNotFound, "not_found", "the catalog has no SKU %q", ch.SKU)
		return
	}
	if err := ch.apply(it); err != nil {
		writeDemoError(w, http.StatusBadRequest, "invalid", "%s", err.Error())
		return
	}
	if e := cart.ValidateItem(it, cart.DefaultLimits); e != nil {
		writeDemoError(w, http.StatusBadRequest, string(e.Code), "%s", e.Message)
		return
	}
	if err := api.putItems(r.Context(), []cart.Item{*it}); err != nil {
		d.relayError(w, r, err)
		return
	}
	d.log.Info("demo storefront: item changed", logkey.SKU, it.SKU)
	writeDemoJSON(w, http.StatusOK, map[string]cart.Item{"item": *it})
}

// apply makes the change to it.
func (ch *itemChange) apply(it *cart.Item) error {
	if ch.Price != nil {
		if *ch.Price <= 0 {
			return errors.New("price must be a positive amount in minor units")
		}
		it.Price = *ch.Price
	}
	if ch.Sellable != nil {
		it.Sellable = *ch.Sellable
	}
	switch s := strings.TrimSpace(string(ch.Stock)); s {
	case "":
	case "null":
		it.Stock = nil
	default:
		var n int
		if err := json.Unmarshal(ch.Stock, &n); err != nil || n < 0 {
			return errors.New("stock must be a whole number from 0, or null for no limit")
		}
		it.Stock = &n
	}
	it.UpdatedAt = time.Time{} // the cart server's to set
	return nil
}
