//go:build !js

package cart

import "golang.org/x/text/unicode/norm"

// nfc returns s in Normalization Form C (see nfc_js.go for the browser).
func nfc(s string) string { return norm.NFC.String(s) }
