package cart

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text in a cart is Unicode in Normalization Form C. SKUs, option keys and
// values, and names are normalized before they are checked, compared or
// stored, so that two spellings of the same text (a precomposed "é" and "e"
// followed by a combining accent) are one line, and the limits count the
// bytes that are stored. Control and invisible characters are refused: they
// would make two lines look the same, or reorder what is shown.

// NormalizeText returns s in Unicode Normalization Form C.
func NormalizeText(s string) string { return nfc(s) }

// normalizeKey is an option key as stored: NFC, trimmed, lower-cased (the
// lower-casing can leave text that is not NFC, so it is normalized again).
func normalizeKey(k string) string {
	return nfc(strings.ToLower(strings.TrimSpace(nfc(k))))
}

// normalizeValue is an option value as stored: NFC and trimmed.
func normalizeValue(v string) string { return strings.TrimSpace(nfc(v)) }

// invisible reports whether r is a control or invisible character: C0 and
// C1 controls (Cc), format characters (Cf: zero-width space and joiners,
// bidi embeddings, overrides and isolates, the byte order mark, soft
// hyphen, tags), line and paragraph separators, noncharacters, and the
// Hangul fillers that render as nothing.
func invisible(r rune) bool {
	switch {
	case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp):
		return true
	case r >= 0xFDD0 && r <= 0xFDEF, r&0xFFFE == 0xFFFE:
		return true
	case r == 0x115F, r == 0x1160, r == 0x3164, r == 0xFFA0:
		return true
	}
	return false
}

// checkText returns a description of what is wrong with s for a field that
// must be visible text, or "" if nothing is. joiners allows the zero-width
// joiner and non-joiner, which some scripts and emoji need in names.
func checkText(s string, joiners bool) string {
	if visibleASCII(s) {
		return "" // the common case, without the Unicode tables
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if joiners && (r == 0x200C || r == 0x200D) {
			continue
		}
		if invisible(r) {
			return fmt.Sprintf("contains the control or invisible character U+%04X", r)
		}
	}
	return ""
}

// visibleASCII reports whether s holds only ASCII from space to tilde,
// none of which is a control or invisible character.
func visibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// printable reports whether s is valid UTF-8 without control or invisible
// characters.
func printable(s string) bool { return checkText(s, false) == "" }

// Normalized returns the op with its text as it is stored: the SKU and the
// name in NFC, the options normalized as for the line key (see
// NormalizeOptions). Apply applies the normalized op, and the server logs
// it; normalizing twice changes nothing.
func (op Op) Normalized() Op {
	op.SKU = NormalizeText(op.SKU)
	op.Options = NormalizeOptions(op.Options)
	if op.Details != nil {
		d := *op.Details
		d.Name = NormalizeText(d.Name)
		op.Details = &d
	}
	return op
}
