//go:build js && wasm

package widget

import (
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// TestIntlMoney formats with the browser's Intl.NumberFormat (go test
// -exec wasmbrowsertest). The expected strings are byte for byte what
// Chromium's ICU writes, including the no-break space before "€" in
// de-DE.
func TestIntlMoney(t *testing.T) {
	tests := []struct {
		locale   string
		minor    int64
		currency string
		want     string
	}{
		{"en-US", 1500, "JPY", "¥1,500"},
		{"de-DE", 1234, "EUR", "12,34\u00a0€"},
		{"en-US", 1234, "EUR", "€12.34"},
		{"en", 1200, "EUR", "€12.00"},
		{"en-US", 123456789, "USD", "$1,234,567.89"},
		{"en-US", 5, "USD", "$0.05"},
		{"en-US", 12345, "KWD", "KWD\u00a012.345"},
		{"en-US", 1500, "KRW", "₩1,500"},
		{"en-US", 1999, "CHF", "CHF\u00a019.99"},
		{"en-US", 1999, "", "19.99"},        // no currency: the plain form
		{"en-US", 1999, "eur", "19.99 eur"}, // not an ISO code: the plain form
		{"en-US", 1999, "QQQ", "QQQ\u00a019.99"},
	}
	for _, tt := range tests {
		if got := formatMoney(tt.locale, tt.minor, tt.currency); got != tt.want {
			t.Errorf("formatMoney(%q, %d, %q) = %q, want %q", tt.locale, tt.minor, tt.currency, got, tt.want)
		}
	}
}

// TestPriceLocale: formatPrice follows the locale data-locale sets, and
// the browser's language without one.
func TestPriceLocale(t *testing.T) {
	t.Cleanup(func() { priceLocale = "" })
	priceLocale = "de-DE"
	if got, want := formatPrice(1234, "EUR"), "12,34\u00a0€"; got != want {
		t.Errorf("de-DE: formatPrice = %q, want %q", got, want)
	}
	priceLocale = "xx-invalid-tag-!!"
	if got, want := formatPrice(1234, "EUR"), "€12.34"; got != want {
		t.Errorf("a locale Intl refuses: formatPrice = %q, want the plain %q", got, want)
	}
	priceLocale = ""
	want := formatMoney(app.Window().Get("navigator").Get("language").String(), 1234, "EUR")
	if got := formatPrice(1234, "EUR"); got != want {
		t.Errorf("the browser's language: formatPrice = %q, want %q", got, want)
	}
}
