package widget

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// themeKind is what a theme value must look like.
type themeKind int

const (
	themeColor themeKind = iota
	themeLength
	themeFont
)

// themeVars maps the keys of the bridge's theme method to the CSS variables
// they set, defined with their defaults in assets/widget.css.
var themeVars = map[string]struct {
	prop string
	kind themeKind
}{
	"accent":     {"--cartsync-accent", themeColor},
	"background": {"--cartsync-background", themeColor},
	"foreground": {"--cartsync-foreground", themeColor},
	"font":       {"--cartsync-font", themeFont},
	"radius":     {"--cartsync-radius", themeLength},
}

// Length limits of theme values, in bytes.
const (
	maxColorLen  = 64
	maxLengthLen = 16
	maxFontLen   = 120
)

// colorFuncs are the CSS color functions a theme color may use.
var colorFuncs = map[string]bool{
	"rgb": true, "rgba": true, "hsl": true, "hsla": true, "hwb": true,
	"lab": true, "lch": true, "oklab": true, "oklch": true,
}

// themeProps checks a theme given to the bridge and returns the CSS
// variables to set: property → value, where "" means back to the default.
// Keys left out are not changed. It refuses the whole theme if a key is
// unknown or a value is not a plain color, length or font list (so nothing
// like url(…) or a second declaration can get in).
func themeProps(theme map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(theme))
	keys := make([]string, 0, len(theme))
	for k := range theme {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the first bad key deterministically
	for _, k := range keys {
		v := strings.TrimSpace(theme[k])
		tv, ok := themeVars[k]
		if !ok {
			return nil, fmt.Errorf("unknown theme key %q", k)
		}
		if v != "" {
			var ok bool
			switch tv.kind {
			case themeColor:
				ok = validColor(v)
			case themeLength:
				ok = validLength(v)
			case themeFont:
				ok = validFont(v)
			}
			if !ok {
				return nil, fmt.Errorf("theme %s: %q is not allowed", k, v)
			}
		}
		out[tv.prop] = v
	}
	return out, nil
}

// validColor accepts #rgb, #rgba, #rrggbb, #rrggbbaa, a color keyword, or
// one of colorFuncs with plain arguments: rgb(0 0 0 / 50%).
func validColor(v string) bool {
	if len(v) > maxColorLen {
		return false
	}
	if hex, ok := strings.CutPrefix(v, "#"); ok {
		switch len(hex) {
		case 3, 4, 6, 8:
		default:
			return false
		}
		for _, r := range hex {
			if !isHex(r) {
				return false
			}
		}
		return true
	}
	name, args, fn := strings.Cut(v, "(")
	if !fn {
		return isLetters(v)
	}
	if !colorFuncs[strings.ToLower(name)] {
		return false
	}
	args, ok := strings.CutSuffix(args, ")")
	if !ok || args == "" {
		return false
	}
	for _, r := range args {
		if !isAlnum(r) && !strings.ContainsRune(" .,%/+-", r) {
			return false
		}
	}
	return true
}

// validLength accepts 0 or a number of px, rem, em or %, with up to four
// digits and three decimals: "8px", "0.5rem".
func validLength(v string) bool {
	if len(v) > maxLengthLen {
		return false
	}
	if v == "0" {
		return true
	}
	num := strings.TrimRight(v, "abcdefghijklmnopqrstuvwxyz%")
	switch v[len(num):] {
	case "px", "rem", "em", "%":
	default:
		return false
	}
	intPart, frac, dot := strings.Cut(num, ".")
	if !isDigits(intPart) || len(intPart) > 4 || (dot && (!isDigits(frac) || len(frac) > 3)) {
		return false
	}
	return true
}

// validFont accepts a font family list: `"Helvetica Neue", Arial,
// sans-serif`.
func validFont(v string) bool {
	if len(v) > maxFontLen {
		return false
	}
	for _, r := range v {
		if !isAlnum(r) && !strings.ContainsRune(` ,-_'"`, r) {
			return false
		}
	}
	return strings.Count(v, `"`)%2 == 0 && strings.Count(v, `'`)%2 == 0
}

func isHex(r rune) bool {
	return ('0' <= r && r <= '9') || ('a' <= r && r <= 'f') || ('A' <= r && r <= 'F')
}

func isAlnum(r rune) bool {
	return ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
}

func isLetters(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z') && !('A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// maxLocaleLen is the longest locale the theme may give, in bytes.
const maxLocaleLen = 35

// themeLocale takes the locale out of a theme given to the bridge (embed.js
// sends the script's data-locale there): the BCP 47 tag prices are
// formatted for, "" for the browser's language. ok reports whether the
// theme had one; rest is the theme without it.
func themeLocale(theme map[string]string) (rest map[string]string, locale string, ok bool, err error) {
	locale, ok = theme["locale"]
	if !ok {
		return theme, "", false, nil
	}
	rest = make(map[string]string, len(theme))
	for k, v := range theme {
		if k != "locale" {
			rest[k] = v
		}
	}
	locale = strings.TrimSpace(locale)
	if locale != "" && !validLocale(locale) {
		return nil, "", false, fmt.Errorf("theme locale: %q is not a BCP 47 language tag", locale)
	}
	return rest, locale, true, nil
}

// validLocale reports whether s has the shape of a BCP 47 language tag: a
// language of 2 to 8 letters, then subtags of 1 to 8 letters or digits,
// joined by hyphens ("en", "de-DE", "zh-Hant-TW").
func validLocale(s string) bool {
	if len(s) > maxLocaleLen {
		return false
	}
	for i, sub := range strings.Split(s, "-") {
		if len(sub) < 1 || len(sub) > 8 || (i == 0 && len(sub) < 2) {
			return false
		}
		for _, r := range sub {
			letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
			if !letter && (i == 0 || r < '0' || r > '9') {
				return false
			}
		}
	}
	return true
}

// Checkout modes (theme checkout): the panel's Review order goes to the
// review step, whose Checkout hands the cart over; direct adds a Checkout
// button next to Review order that hands over the cart shown.
const (
	checkoutReview = "review"
	checkoutDirect = "direct"
)

// themeRequest is the theme method's argument, checked: the CSS variables
// to set and the options that are not styles.
type themeRequest struct {
	props     map[string]string // themeProps
	locale    string            // locale, if hasLocale
	hasLocale bool
	// checkout is the checkout mode, "" when the theme leaves it.
	checkout string
	// messages are the storefront's texts (id → text, checked against
	// the language only once it is known: checkMessages); nil when the
	// theme leaves them.
	messages map[string]string
}

// parseTheme checks the theme method's argument (parseCall): an object of
// strings, but for messages, an object of strings itself.
func parseTheme(args []json.RawMessage) (*themeRequest, error) {
	var raw map[string]json.RawMessage
	if len(args) == 0 || string(args[0]) == "null" || json.Unmarshal(args[0], &raw) != nil || raw == nil {
		return nil, badRequest("argument 1 (theme) must be an object of strings")
	}
	tr := &themeRequest{}
	theme := make(map[string]string, len(raw))
	for k, v := range raw {
		if k == "messages" {
			if string(v) == "null" {
				continue
			}
			if json.Unmarshal(v, &tr.messages) != nil || tr.messages == nil {
				return nil, badRequest("theme messages must be an object of strings: message id → text")
			}
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil, badRequest("argument 1 (theme) must be an object of strings")
		}
		theme[k] = s
	}
	if mode, ok := theme["checkout"]; ok {
		delete(theme, "checkout")
		switch mode = strings.TrimSpace(mode); mode {
		case "", checkoutReview:
			tr.checkout = checkoutReview
		case checkoutDirect:
			tr.checkout = checkoutDirect
		default:
			return nil, badRequest("theme checkout: %.40q is not review or direct", mode)
		}
	}
	rest, locale, hasLocale, err := themeLocale(theme)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	tr.locale, tr.hasLocale = locale, hasLocale
	if tr.props, err = themeProps(rest); err != nil {
		return nil, badRequest("%v", err)
	}
	return tr, nil
}
