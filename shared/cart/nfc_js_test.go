//go:build js

package cart

import (
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// TestBrowserNFCMatchesXText holds the browser's normalize("NFC") to the
// server's golang.org/x/text on the cases where normalizers differ: the
// order of combining marks, composition exclusions and singletons, Hangul
// syllables and jamo, and text that is already NFC.
func TestBrowserNFCMatchesXText(t *testing.T) {
	tests := []struct{ name, in string }{
		{"ascii", "SKU-42 blue"},
		{"precomposed", "caf\u00e9"},
		{"combining acute", "cafe\u0301"},
		{"two marks out of canonical order", "a\u0323\u0302 a\u0302\u0323"},
		{"marks of equal class keep their order", "a\u0301\u0300"},
		{"composition exclusion", "\u0958 \u2adc"},
		{"singletons", "\u212b \u2126 \u0340"},
		{"hangul syllable from jamo", "\u1100\u1161\u11a8"},
		{"hangul LV + T", "\uac00\u11a8"},
		{"hangul precomposed", "\ud55c\uad6d\uc5b4"},
		{"greek with marks", "\u03b1\u0313\u0301\u0345"},
		{"vietnamese", "Vie\u0323\u0302t Nam"},
		{"devanagari nukta", "\u0915\u093c"},
		{"emoji with joiners", "\U0001F469\u200d\U0001F4BB \U0001F1EB\U0001F1F7"},
		{"dotless i and dotted I", "\u0131 \u0130 I\u0307"},
		{"mark at the start", "\u0301a"},
		{"long run of marks", "o" + "\u0308\u0301\u0323\u0328\u0304\u0306\u030c"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := norm.NFC.String(tt.in)
			if got := nfc(tt.in); got != want {
				t.Errorf("nfc(%+q) = %+q, x/text gives %+q", tt.in, got, want)
			}
			if got := NormalizeText(tt.in); got != want {
				t.Errorf("NormalizeText(%+q) = %+q, want %+q", tt.in, got, want)
			}
		})
	}
}

// TestBrowserNFCKeepsInvalidUTF8 checks that invalid UTF-8 stays invalid,
// so that checkText refuses it in the browser as on the server, where
// JavaScript would have turned it into U+FFFD.
func TestBrowserNFCKeepsInvalidUTF8(t *testing.T) {
	in := "caf\xe9 e\u0301"
	if got := NormalizeText(in); utf8.ValidString(got) {
		t.Errorf("NormalizeText(%+q) = %+q, valid UTF-8", in, got)
	}
	op := Op{Client: "c1", Seq: 1, Kind: KindAdd, SKU: in, Quantity: 1}.Normalized()
	if err := op.Validate(DefaultLimits); err == nil {
		t.Errorf("an add of SKU %+q was accepted", in)
	}
}
