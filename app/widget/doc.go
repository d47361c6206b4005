// Package widget is the cart widget shoppers see: a cart button with the
// item count that opens a panel listing the lines, with a review step that
// hands checkout to the storefront.
//
// The widget is a go-app page served at "/" and shown in an iframe by
// assets/embed.js; the two talk through the postMessage bridge of
// docs/embedding.md. The package compiles natively too, so that the server
// can render the same route ([Routes]) and the rendering can be tested with
// app.NewTestEngine.
//
// # Structure
//
//   - [Widget] is the only component. Its view state (the engine's
//     syncclient.State, open, review) is touched on the UI goroutine only;
//     the render helpers in view.go are pure functions of it.
//   - A client (client.go) holds what lives for the page in the browser: the
//     sync engine, the serial queue that applies edits in the order they were
//     asked for, the bridge to the host page, the BroadcastChannel to the
//     other tabs and the window listeners. It is created in OnMount, which
//     runs in the browser only.
//   - The bridge's pure parts (origin checks, request decoding, reply and
//     event encoding) are in bridge.go; the theme checks in theme.go; the
//     texts shown to the shopper in text.go, from the message catalogs
//     (i18n.go); prices are formatted with the
//     browser's Intl.NumberFormat for the shopper's locale (money_js.go),
//     exact to the currency's minor units, and in a plain form in native
//     builds (money_other.go).
//
// # Languages
//
// Every text the shopper sees or hears comes from a message catalog keyed
// by stable ids (catalog_en.go, catalog_de.go, catalog_ar.go; the list is
// in docs/translations.md), with CLDR's plural forms. The language is that
// of the theme's locale (embed.js's data-locale), else the first of the
// browser's languages with texts, matched by language subtag; else English.
// The storefront may change or add texts with the theme's messages,
// checked against English (an unknown id or other placeholders refuse the
// theme). The document gets lang, and dir="rtl" for a language written
// right to left; assets/widget.css uses logical properties, so the panel
// mirrors.
//
// # Logins
//
// The host page logs the shopper in and out through the bridge (login,
// logout), which hands the user token and merge policy to the engine
// (SetUser); the widget never stores the token. What the server says about
// the login reaches the widget as engine state: a choice between the two
// carts (policy choose) opens the panel on both carts until the shopper
// picks (Engine.Choose); a merge that changed the cart opens it on the
// review step with a notice of what changed, and is posted to the host as
// the merge event once the cart shown includes it; a refused or expired
// token (State.NeedsLogin) keeps the cart editable, with the status login;
// an expired guest cart and the edits lost with it are told until the
// shopper dismisses the notice (Engine.AckNotices).
//
// # Catalog and checkout
//
// When the storefront keeps its catalog on the cart server, the engine's
// State carries what changed under each line since it was added
// (notices.go): the panel and the review step tell it in plain words with
// a one-click fix (accept the new price: a details op; reduce to what is
// available: a set op; remove a withdrawn item), subtotals are the
// server's totals at the catalog's prices, and Checkout stays off while a
// notice stands. With the theme's checkout mode direct, the panel has a
// Checkout button next to Review order that hands over the cart it shows,
// without the review step. Checkout waits for the pending edits, checks
// that the cart is still the one the review step (or the panel) showed,
// and asks the server for a
// checkout at that version (Engine.Checkout); the checkout event carries
// its id (checkout_id). A cart that moved meanwhile, here or on the
// server, is shown on the review step again with a short message, and
// nothing is handed over.
//
// # Tabs
//
// Each tab runs its own engine with its own client id over the shared
// IndexedDB outbox. After an edit a tab posts {"changed": true} on the
// BroadcastChannel "cartsync"; the others reload the storage, show the edit
// and send it too if they are connected. A tab whose connection took ops
// out of the outbox (the server answered them) posts {"acked": true}: the
// tabs that are not connected (waiting for a login, say) reload, and stop
// showing them as waiting. So the server's reply to an edit
// may come to a tab other than the one it was made in: a tab whose engine
// hears of a refusal or a reduced quantity posts it ({"results": "[results
// as JSON]"}), and the others add it to their engine's state
// (Engine.NoteResults), so that every tab's panel, live region and page
// tell it.
//
// # Keyboards, screen readers and phones
//
// The panel is a modal dialog named by its title. Opening it moves the focus
// into it, closing it back to the cart button; Tab stays inside it; Escape
// closes the innermost thing (the question whether to remove a line, else
// the panel). embed.js focuses the frame when the panel opens or closes,
// which drops the focus inside it: the frame's focus listener puts it back.
// Remove offers Undo (an add of the same quantity, options and details),
// in the panel's foot so that it is on screen wherever the line was, with
// no time limit: until the panel closes, another line is removed or the
// line is back, and moves the focus to the next line's Remove
// button, once the line is gone. One polite live region outside the dialog
// tells adds from the page, quantities changed with the panel's buttons,
// removals, going offline and back, refused and reduced edits, catalog
// changes and what a login merge did (live.go); nothing inside the panel
// is live. A fix that takes its own button away (accept a new price,
// reduce to what is available) leaves the focus on the line's Decrease
// button. In forced colours (Windows High Contrast) the cart icon and the
// buttons keep their outlines; in a short viewport (a phone on its side,
// 400 % zoom) the panel's head and foot scroll with the lines. On a
// narrow screen the panel fills the frame, which embed.js makes the whole
// viewport, clear of the safe areas (assets/widget.css); every button is at
// least 44 × 44 px.
//
// # Updates
//
// A deploy changes the service worker (its cache name is the server's
// version). The widget asks the browser to look for it whenever the engine
// connects (a deploy restarts the server, so open tabs reconnect to the new
// version) and when the page is shown again; the browser itself looks only
// when the page is navigated to. When the new worker is active,
// [Widget.OnAppUpdate] reloads the widget at once if nothing would be
// disturbed (no unsent edit, the panel closed, no login choice), or else
// offers "Update available — reload" in the panel. Unsent edits survive the
// reload either way: they are in IndexedDB.
package widget
