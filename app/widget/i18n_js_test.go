//go:build js && wasm

package widget

import (
	"strings"
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// TestIntlMoneyLocales: a zero-decimal currency (JPY) in German and in
// Arabic, through the browser's Intl.NumberFormat (go test -exec
// wasmbrowsertest): no decimals in either, the strings byte for byte what
// Chromium's ICU writes. Arabic starts with a right-to-left mark (U+200F);
// "ar" writes Western digits, "ar-EG" Arabic-Indic ones with the Arabic
// thousands separator (U+066C).
func TestIntlMoneyLocales(t *testing.T) {
	tests := []struct {
		locale   string
		minor    int64
		currency string
		want     string
	}{
		{"de", 1500, "JPY", "1.500\u00a0¥"},
		{"de-DE", 123456, "JPY", "123.456\u00a0¥"},
		{"ar", 1500, "JPY", "\u200f1,500\u00a0JP¥\u200e"},
		{"ar-EG", 1500, "JPY", "\u200f١٬٥٠٠\u00a0JP¥\u200e"},
		{"ar", 1234, "EUR", "\u200f12.34\u00a0€"},
	}
	for _, tt := range tests {
		got := formatMoney(tt.locale, tt.minor, tt.currency)
		if got != tt.want {
			t.Errorf("formatMoney(%q, %d, %q) = %+q, want %+q", tt.locale, tt.minor, tt.currency, got, tt.want)
		}
		if tt.currency == "JPY" && strings.ContainsRune(got, '٫') {
			t.Errorf("formatMoney(%q, %d, JPY) = %q has decimals", tt.locale, tt.minor, got)
		}
	}
}

// TestDocumentLanguage: the widget's document gets the language of the
// texts and, for Arabic, the right-to-left direction.
func TestDocumentLanguage(t *testing.T) {
	t.Cleanup(func() { setLanguage(language{tag: defaultLanguage}, "") })
	root := app.Window().Get("document").Get("documentElement")
	for _, tt := range []struct{ lang, dir string }{{"ar", "rtl"}, {"de", "ltr"}, {"en", "ltr"}} {
		setLanguage(language{tag: tt.lang}, "")
		if got, gotDir := root.Get("lang").String(), root.Get("dir").String(); got != tt.lang || gotDir != tt.dir {
			t.Errorf("%s: the document's lang %q, dir %q; want %q, %q", tt.lang, got, gotDir, tt.lang, tt.dir)
		}
	}
}

// TestBrowserLanguages reads navigator.languages.
func TestBrowserLanguages(t *testing.T) {
	got := browserLanguages()
	want := app.Window().Get("navigator").Get("languages").Call("join", ",").String()
	if len(got) == 0 || strings.Join(got, ",") != want {
		t.Errorf("browserLanguages() = %q, want navigator.languages %q", got, want)
	}
}
