//go:build !js || !wasm

package widget

// formatMoney formats an amount in minor units of currency. Outside the
// browser there is no Intl: the locale is ignored and the amount is
// written in the plain form, exact to the currency's minor units.
func formatMoney(_ string, minor int64, currency string) string {
	return plainPrice(minor, currency)
}
