//go:build js && wasm

package widget

import (
	"strconv"
	"strings"
	"sync"
	"syscall/js"
)

// intlFormats caches one Intl.NumberFormat per locale and currency.
var intlFormats struct {
	sync.Mutex
	m map[[2]string]js.Value
}

// formatMoney formats an amount in minor units of currency with the
// browser's Intl.NumberFormat for locale ("" for the browser's language):
// "€12.00" in en, "12,34 €" in de-DE, "¥1,500" for JPY in en-US. The
// fraction digits are the currency's minor units (minorDigits), so the
// amount shown is exactly the integer the server holds. Without a valid
// currency code, or if Intl refuses the locale, the plain form.
func formatMoney(locale string, minor int64, currency string) (s string) {
	if !isCurrencyCode(currency) {
		return plainPrice(minor, currency)
	}
	defer func() {
		if recover() != nil { // a RangeError: an unknown locale or currency
			s = plainPrice(minor, currency)
		}
	}()
	return bindSymbols(intlFormat(locale, currency).Call("format", decimalString(minor, minorDigits(currency))).String())
}

// isCurrencyCode reports whether s looks like an ISO 4217 code: three
// upper-case letters.
func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

// intlFormat returns the cached Intl.NumberFormat of locale and currency.
func intlFormat(locale, currency string) js.Value {
	intlFormats.Lock()
	defer intlFormats.Unlock()
	key := [2]string{locale, currency}
	if f, ok := intlFormats.m[key]; ok {
		return f
	}
	digits := minorDigits(currency)
	var loc any = js.Undefined()
	if locale != "" {
		loc = locale
	}
	f := js.Global().Get("Intl").Get("NumberFormat").New(loc, map[string]any{
		"style":                 "currency",
		"currency":              currency,
		"minimumFractionDigits": digits,
		"maximumFractionDigits": digits,
	})
	if intlFormats.m == nil {
		intlFormats.m = map[[2]string]js.Value{}
	}
	intlFormats.m[key] = f
	return f
}

// decimalString writes minor units as an exact decimal string, "12.34" for
// 1234 with 2 digits: Intl.NumberFormat formats a string without going
// through a float.
func decimalString(minor int64, digits int) string {
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u, 10)
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
