//go:build js

package cart

import (
	"syscall/js"
	"unicode/utf8"
)

// nfc returns s in Normalization Form C. In the browser it asks
// String.prototype.normalize, which gives the same result as
// golang.org/x/text/unicode/norm for every assigned character (the Unicode
// normalization stability policy; nfc_js_test.go checks the hard cases):
// linking x/text's tables would add about 50 KB to the widget's brotli
// download. Invalid UTF-8 is returned as it is, as x/text does, so that
// checkText refuses it here as on the server (JavaScript would have
// replaced it with U+FFFD); ASCII is NFC and skips the call.
func nfc(s string) string {
	ascii := true
	for i := 0; i < len(s) && ascii; i++ {
		ascii = s[i] < utf8.RuneSelf
	}
	if ascii || !utf8.ValidString(s) {
		return s
	}
	return normalize.Call("call", s, "NFC").String()
}

// normalize is String.prototype.normalize: a Go string passed to JavaScript
// is a primitive string, whose methods Value.Call cannot reach.
var normalize = js.Global().Get("String").Get("prototype").Get("normalize")
