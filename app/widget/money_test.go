//go:build !js || !wasm

package widget

import (
	"context"
	"reflect"
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// TestPanelMoney checks the amounts the panel shows: each line's unit
// price and total (quantity × unit price), a subtotal per currency and the
// note about taxes and shipping. Natively the plain form stands in for
// Intl (money_js_test.go checks that one in a browser).
func TestPanelMoney(t *testing.T) {
	type lineWant struct {
		unit, total string
	}
	tests := []struct {
		name  string
		lines []*cart.Line
		want  []lineWant
		sums  []string
	}{
		{
			name:  "EUR",
			lines: []*cart.Line{testLine("TEE", "T-shirt", 3, 1999, "EUR", nil)},
			want:  []lineWant{{"€19.99", "€59.97"}},
			sums:  []string{"€59.97"},
		},
		{
			name:  "USD",
			lines: []*cart.Line{testLine("CAP", "Cap", 2, 1005, "USD", nil), testLine("PIN", "Pin", 1, 99, "USD", nil)},
			want:  []lineWant{{"$10.05", "$20.10"}, {"$0.99", "$0.99"}},
			sums:  []string{"$21.09"},
		},
		{
			name:  "JPY has no decimals",
			lines: []*cart.Line{testLine("TEA", "Tea", 2, 1500, "JPY", nil)},
			want:  []lineWant{{"¥1500", "¥3000"}},
			sums:  []string{"¥3000"},
		},
		{
			name:  "two currencies",
			lines: []*cart.Line{testLine("TEE", "T-shirt", 2, 1250, "EUR", nil), testLine("MUG", "Mug", 4, 800, "USD", nil), testLine("BAG", "Bag", 1, 500, "EUR", nil)},
			want:  []lineWant{{"€12.50", "€25.00"}, {"$8.00", "$32.00"}, {"€5.00", "€5.00"}},
			sums:  []string{"€30.00", "$32.00"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Widget{open: true}
			w.show(testState(syncclient.Synced, 0, tt.lines...))
			mount(t, w)
			for i, lw := range tt.want {
				line := []int{0, 2, panelBody, i}
				match(t, app.Text(lw.unit), w, at(line, 1, 1, 0)...)
				match(t, app.P().Class("cartsync-line-total"), w, at(line, 1, 2)...)
				match(t, app.Span().Class("cartsync-sr").Text("Line total "), w, at(line, 1, 2, 0)...)
				match(t, app.Text(lw.total), w, at(line, 1, 2, 1)...)
			}
			foot := []int{0, 2, panelFoot}
			for i, s := range tt.sums {
				match(t, app.Span().Class("cartsync-subtotal-amount").Text(s), w, at(foot, 0, i+1)...)
			}
			if err := app.Match(app.Span(), w, at(foot, 0, len(tt.sums)+1)...); err == nil {
				t.Errorf("more than %d subtotals", len(tt.sums))
			}
			match(t, app.P().Class("cartsync-tax-note").Text("Taxes and shipping are calculated at checkout."), w, at(foot, 1)...)
		})
	}
}

// TestLineTotalAtNewPrice: a line whose price changed in the catalog
// shows its total at the new price.
func TestLineTotalAtNewPrice(t *testing.T) {
	w := &Widget{open: true}
	st := testState(syncclient.Synced, 0, testLine("TEE", "T-shirt", 2, 1200, "EUR", nil))
	st.Notices = []cart.Notice{{Line: st.Cart.Lines[0].Key, PriceChanged: &cart.PriceChange{From: 1200, To: 1400, Currency: "EUR"}}}
	w.show(st)
	if got, want := w.lineTotal(st.Cart.Lines[0]), "€28.00"; got != want {
		t.Errorf("lineTotal = %q, want %q", got, want)
	}
	if got := w.lineTotal(testLine("PIN", "Pin", 3, 0, "", nil)); got != "" {
		t.Errorf("lineTotal without a price = %q, want none", got)
	}
}

func TestThemeLocale(t *testing.T) {
	tests := []struct {
		name       string
		theme      map[string]string
		rest       map[string]string
		locale     string
		ok, hasErr bool
	}{
		{"none", map[string]string{"accent": "red"}, map[string]string{"accent": "red"}, "", false, false},
		{"de-DE", map[string]string{"accent": "red", "locale": "de-DE"}, map[string]string{"accent": "red"}, "de-DE", true, false},
		{"script and region", map[string]string{"locale": " zh-Hant-TW "}, map[string]string{}, "zh-Hant-TW", true, false},
		{"back to the browser's", map[string]string{"locale": ""}, map[string]string{}, "", true, false},
		{"underscore", map[string]string{"locale": "en_US"}, nil, "", false, true},
		{"digit language", map[string]string{"locale": "e1"}, nil, "", false, true},
		{"one letter", map[string]string{"locale": "e"}, nil, "", false, true},
		{"empty subtag", map[string]string{"locale": "en--US"}, nil, "", false, true},
		{"too long", map[string]string{"locale": "en-aaaaaaaa-bbbbbbbb-cccccccc-dddddddd"}, nil, "", false, true},
		{"script", map[string]string{"locale": "en');x"}, nil, "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rest, locale, ok, err := themeLocale(tt.theme)
			if (err != nil) != tt.hasErr {
				t.Fatalf("err = %v, want error %v", err, tt.hasErr)
			}
			if locale != tt.locale || ok != tt.ok || !reflect.DeepEqual(rest, tt.rest) {
				t.Errorf("got %q, %q, %v; want %q, %q, %v", rest, locale, ok, tt.rest, tt.locale, tt.ok)
			}
		})
	}
}

// TestExecThemeLocale: the bridge's theme carries data-locale to the
// prices; a bad tag refuses the theme.
func TestExecThemeLocale(t *testing.T) {
	t.Cleanup(func() { priceLocale = "" })
	c, _, e := newTestClient(t)
	ctx := context.Background()
	steps := []struct {
		req, want, locale string
	}{
		{`{"cartsync":1,"id":1,"method":"theme","args":[{"accent":"#0a7","locale":"de-DE"}]}`,
			`{"cartsync":1,"id":1,"result":true}`, "de-DE"},
		{`{"cartsync":1,"id":2,"method":"theme","args":[{"accent":"#0a7"}]}`,
			`{"cartsync":1,"id":2,"result":true}`, "de-DE"},
		{`{"cartsync":1,"id":3,"method":"theme","args":[{"locale":"de_DE"}]}`,
			`{"cartsync":1,"id":3,"error":{"code":"bad_request","message":"theme locale: \"de_DE\" is not a BCP 47 language tag"}}`, "de-DE"},
		{`{"cartsync":1,"id":4,"method":"theme","args":[{"locale":""}]}`,
			`{"cartsync":1,"id":4,"result":true}`, ""},
	}
	for _, s := range steps {
		r := request1(t, s.req)
		result, err := c.exec(ctx, r)
		if got := string(encodeReply(r.id, result, err)); got != s.want {
			t.Errorf("%s:\n got %s\nwant %s", s.req, got, s.want)
		}
		e.ConsumeAll()
		if priceLocale != s.locale {
			t.Errorf("%s: priceLocale %q, want %q", s.req, priceLocale, s.locale)
		}
	}
}

// A currency sign after Latin letters gets a left-to-right mark, so that a
// right-to-left page keeps "JP¥" together; nothing else changes.
func TestBindSymbols(t *testing.T) {
	for in, want := range map[string]string{
		"\u200f1,500\u00a0JP¥": "\u200f1,500\u00a0JP¥\u200e",
		"\u200f9.99\u00a0US$":  "\u200f9.99\u00a0US$\u200e",
		"¥1,500":               "¥1,500",
		"12,34\u00a0€":         "12,34\u00a0€",
		"CHF\u00a019.99":       "CHF\u00a019.99",
		"\u200f١٬٥٠٠\u00a0JP¥": "\u200f١٬٥٠٠\u00a0JP¥\u200e",
	} {
		if got := bindSymbols(in); got != want {
			t.Errorf("bindSymbols(%q) = %q, want %q", in, got, want)
		}
	}
}
