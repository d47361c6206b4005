package webui

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/logkey"
)

// The demo's checkout: the widget hands the shopper over with a checkout
// id (/checkout.html?checkout=<id>); the page asks the demo's backend,
// which reads the checkout from the cart server rather than trusting what
// the browser says about prices or quantities, and completes it when the
// shopper places the order.

// placedOrder answers POST /demo/checkout/{id}/place.
type placedOrder struct {
	// Order is the order's number, such as DEMO-1042.
	Order string `json:"order"`
	// Checkout is the completed checkout.
	Checkout *cart.Checkout `json:"checkout"`
	// Cart is the cart after the order: what was added to it during the
	// checkout stays; nil when it could not be read.
	Cart *cart.Cart `json:"cart,omitempty"`
}

// maxCheckoutID bounds a checkout id taken from the path.
const maxCheckoutID = 256

// checkoutID reads {id}, or answers 404 and "".
func checkoutID(w http.ResponseWriter, r *http.Request) string {
	id := r.PathValue("id")
	if id == "" || len(id) > maxCheckoutID {
		writeDemoError(w, http.StatusNotFound, "not_found", "no such checkout")
		return ""
	}
	return id
}

// serveRedeem answers the checkout as the cart server has it: its lines at
// the catalog's prices, its totals and its status.
func (d *demo) serveRedeem(w http.ResponseWriter, r *http.Request) {
	api := d.backend(w)
	if api == nil {
		return
	}
	id := checkoutID(w, r)
	if id == "" {
		return
	}
	co, err := api.checkout(r.Context(), id)
	if err != nil {
		d.relayError(w, r, err)
		return
	}
	writeDemoJSON(w, http.StatusOK, co)
}

// servePlace places the order: a real storefront would take the payment
// here. It completes the checkout with a new order number, which takes the
// checked-out quantities out of the cart, and lowers the catalog's stock
// by what was sold. Placing a placed order again answers the same order.
func (d *demo) servePlace(w http.ResponseWriter, r *http.Request) {
	api := d.backend(w)
	if api == nil {
		return
	}
	id := checkoutID(w, r)
	if id == "" {
		return
	}
	ctx := r.Context()
	read, err := api.checkout(ctx, id)
	if err != nil {
		d.relayError(w, r, err)
		return
	}
	co, cartID := &read.Checkout, read.cartNow()
	switch co.Status {
	case cart.CheckoutOpen:
		order := fmt.Sprintf("DEMO-%d", d.orders.Add(1))
		if co, err = api.complete(ctx, id, order); err != nil {
			d.relayError(w, r, err)
			return
		}
		// Two places at once both complete; the cart server keeps the
		// first order, and only its place sells the stock.
		if co.Order == order {
			if err := d.sell(ctx, api, co); err != nil {
				d.log.Error("demo storefront: lower the stock", logkey.Checkout, id, logkey.Err, err)
			}
			d.log.Info("demo storefront: order placed", logkey.Order, order, logkey.Checkout, id)
		}
	case cart.CheckoutCompleted:
		// Placed already (a second click, a reload): the same order.
	default:
		writeDemoError(w, http.StatusConflict, "checkout_ended", "this checkout is %s: open the cart and check out again", co.Status)
		return
	}
	placed := placedOrder{Order: co.Order, Checkout: co}
	// The cart the order took its lines from: the user's, for a guest's
	// checkout placed after a login.
	if placed.Cart, err = api.cart(ctx, cartID); err != nil {
		d.log.Warn("demo storefront: read the cart after the order", logkey.Cart, cartID, logkey.Err, err)
	}
	writeDemoJSON(w, http.StatusOK, placed)
}

// sell lowers the catalog's stock of the items of co's lines that have a
// stock, as a shop's inventory does when an order is placed.
func (d *demo) sell(ctx context.Context, api *backendClient, co *cart.Checkout) error {
	d.selling.Lock()
	defer d.selling.Unlock()
	sold := map[string]int{}
	for _, l := range co.Lines {
		sold[l.SKU] += l.Quantity
	}
	items, err := api.items(ctx)
	if err != nil {
		return err
	}
	var changed []cart.Item
	for _, it := range items {
		n, ok := sold[it.SKU]
		if !ok || it.Stock == nil {
			continue
		}
		left := max(*it.Stock-n, 0)
		it.Stock = &left
		it.UpdatedAt = time.Time{} // the cart server's to set
		changed = append(changed, it)
	}
	if len(changed) == 0 {
		return nil
	}
	return api.putItems(ctx, changed)
}

// serveCancel cancels the checkout: the shopper went back to the cart.
func (d *demo) serveCancel(w http.ResponseWriter, r *http.Request) {
	api := d.backend(w)
	if api == nil {
		return
	}
	id := checkoutID(w, r)
	if id == "" {
		return
	}
	co, err := api.cancel(r.Context(), id)
	if err != nil {
		d.relayError(w, r, err)
		return
	}
	writeDemoJSON(w, http.StatusOK, co)
}
