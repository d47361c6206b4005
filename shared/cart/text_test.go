package cart

import (
	"strings"
	"testing"
)

func TestInvisibleCharactersRefused(t *testing.T) {
	add := func(sku string, opts map[string]string, d *Details) Op {
		return Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: sku, Options: opts, Quantity: 1, Details: d}
	}
	tests := []struct {
		name string
		op   Op
		code Code
	}{
		{"zero-width space in sku", add("TEE\u200b01", nil, nil), CodeInvalidSKU},
		{"bidi override in sku", add("TEE\u202e10", nil, nil), CodeInvalidSKU},
		{"bidi isolate in sku", add("TEE\u206601", nil, nil), CodeInvalidSKU},
		{"byte order mark before sku", add("\ufeffTEE", nil, nil), CodeInvalidSKU},
		{"zero-width joiner in sku", add("TEE\u200d", nil, nil), CodeInvalidSKU},
		{"soft hyphen in sku", add("TEE\u00ad01", nil, nil), CodeInvalidSKU},
		{"C1 control in sku", add("TEE\u0085", nil, nil), CodeInvalidSKU},
		{"line separator in sku", add("TEE\u2028", nil, nil), CodeInvalidSKU},
		{"hangul filler in sku", add("\u3164", nil, nil), CodeInvalidSKU},
		{"noncharacter in sku", add("TEE\uffff", nil, nil), CodeInvalidSKU},
		{"invalid utf-8 in sku", add("TEE\xff", nil, nil), CodeInvalidSKU},
		{"zero-width space in option key", add("TEE", map[string]string{"si\u200bze": "M"}, nil), CodeInvalidOptions},
		{"bidi mark in option value", add("TEE", map[string]string{"size": "M\u200f"}, nil), CodeInvalidOptions},
		{"bom in option value", add("TEE", map[string]string{"size": "\ufeffM"}, nil), CodeInvalidOptions},
		{"bidi override in name", add("TEE", nil, &Details{Name: "Shirt \u202egpj.exe"}), CodeInvalidDetails},
		{"zero-width space in image", add("TEE", nil, &Details{Image: "https://shop.example/\u200btee.jpg"}), CodeInvalidDetails},
		{"invisible client id", Op{Client: "tab\u200b", Seq: 1, Kind: KindClear}, CodeInvalidOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkRefused(t, tt.op, tt.code) })
	}
}

func TestJoinersAllowedInNames(t *testing.T) {
	c := &Cart{ID: "c"}
	// An emoji ZWJ sequence and a Persian word with a zero-width non-joiner.
	for i, name := range []string{"Family \U0001F468\u200d\U0001F469\u200d\U0001F467 pack", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"} {
		op := Op{Client: "c", Seq: uint64(i + 1), Kind: KindAdd, SKU: "GIFT", Quantity: 1, Details: &Details{Name: name}}
		if _, err := c.Apply(op, "A", DefaultLimits); err != nil {
			t.Fatalf("Apply(name %q) = %v", name, err)
		}
	}
}

// TestCanonicallyEquivalentTextIsOneLine: NFC and NFD spellings of the same
// SKU, option key or value address the same line, stored in NFC.
func TestCanonicallyEquivalentTextIsOneLine(t *testing.T) {
	const nfc, nfd = "caf\u00e9", "cafe\u0301"
	c := &Cart{ID: "c"}
	ops := []Op{
		{Client: "c", Seq: 1, Kind: KindAdd, SKU: nfc, Options: map[string]string{"r\u00f4le": nfc}, Quantity: 1},
		{Client: "c", Seq: 2, Kind: KindAdd, SKU: nfd, Options: map[string]string{"ro\u0302le": nfd}, Quantity: 2},
		{Client: "c", Seq: 3, Kind: KindAdd, SKU: nfd, Options: map[string]string{"R\u00d4LE": nfc}, Quantity: 3},
	}
	for _, op := range ops {
		if _, err := c.Apply(op, "A", DefaultLimits); err != nil {
			t.Fatalf("Apply(%+v) = %v", op, err)
		}
	}
	if len(c.Lines) != 1 {
		t.Fatalf("got %d lines, want 1: %+v", len(c.Lines), c.Lines)
	}
	l := c.Lines[0]
	if l.Quantity != 6 || l.SKU != nfc || l.Options["r\u00f4le"] != nfc || len(l.Options) != 1 {
		t.Fatalf("line = %+v, want quantity 6, sku and options in NFC", l)
	}
	if l.Key != LineKey(nfd, map[string]string{"ro\u0302le": nfd}) {
		t.Fatalf("LineKey of the NFD spelling = %q, want %q", LineKey(nfd, map[string]string{"ro\u0302le": nfd}), l.Key)
	}
	// The Kelvin sign is canonically a K: NFC makes it one, then the key is
	// lower-cased.
	if got, want := LineKey("X", map[string]string{"\u212a": "1"}), LineKey("X", map[string]string{"k": "1"}); got != want {
		t.Fatalf("Kelvin sign key = %q, want %q", got, want)
	}
}

// TestLimitsCountNormalizedBytes: limits hold for what is stored. Lower-casing
// "Ⱥ" (2 bytes) gives "ⱥ" (3 bytes), so 32 of them fit the 64-byte limit as
// sent but would be stored as 96.
func TestLimitsCountNormalizedBytes(t *testing.T) {
	key := strings.Repeat("\u023a", DefaultLimits.MaxOptionLen/2)
	if len(key) != DefaultLimits.MaxOptionLen {
		t.Fatalf("test key is %d bytes", len(key))
	}
	c := &Cart{ID: "c"}
	op := Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "X", Options: map[string]string{key: "v"}, Quantity: 1}
	if _, err := c.Apply(op, "A", DefaultLimits); err == nil || err.Code != CodeInvalidOptions {
		t.Fatalf("Apply = %v, want invalid_options", err)
	}
	// NFC can grow text too: U+0958 is one 3-byte rune that NFC keeps
	// decomposed as two (6 bytes).
	sku := strings.Repeat("\u0958", DefaultLimits.MaxSKU/3)
	if len(sku) > DefaultLimits.MaxSKU || len(NormalizeText(sku)) <= DefaultLimits.MaxSKU {
		t.Fatalf("test sku is %d bytes, %d normalized", len(sku), len(NormalizeText(sku)))
	}
	op = Op{Client: "c", Seq: 2, Kind: KindAdd, SKU: sku, Quantity: 1}
	if _, err := c.Apply(op, "A", DefaultLimits); err == nil || err.Code != CodeInvalidSKU {
		t.Fatalf("Apply = %v, want invalid_sku", err)
	}
	for _, l := range c.Lines {
		for k, v := range l.Options {
			if len(k) > DefaultLimits.MaxOptionLen || len(v) > DefaultLimits.MaxOptionLen {
				t.Fatalf("stored option %q=%q over the limit", k, v)
			}
		}
	}
}

func TestNormalizedIsIdempotent(t *testing.T) {
	op := Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "cafe\u0301", Options: map[string]string{" Si\u0301ze ": " M\u0301 ", "empty": " "}, Quantity: 1, Details: &Details{Name: "Cafe\u0301"}}
	n := op.Normalized()
	if n.SKU != "caf\u00e9" || n.Details.Name != "Caf\u00e9" || len(n.Options) != 1 || n.Options["s\u00edze"] != "\u1e3e" {
		t.Fatalf("Normalized = %+v, options %q", n, n.Options)
	}
	if op.SKU != "cafe\u0301" || op.Details.Name != "Cafe\u0301" || len(op.Options) != 2 {
		t.Fatalf("Normalized changed its receiver: %+v", op)
	}
	nn := n.Normalized()
	if nn.SKU != n.SKU || nn.Details.Name != n.Details.Name || nn.Key() != n.Key() || len(nn.Options) != 1 {
		t.Fatalf("normalizing twice changed the op: %+v", nn)
	}
}

func TestSeqAtOrAbove2To63Refused(t *testing.T) {
	for _, seq := range []uint64{1 << 63, 1<<64 - 1} {
		op := Op{Client: "c", Seq: seq, Kind: KindClear}
		if err := op.ValidateIdentity(); err == nil || err.Code != CodeInvalidOp {
			t.Errorf("seq %d: ValidateIdentity = %v, want invalid_op", seq, err)
		}
	}
	if err := (&Op{Client: "c", Seq: MaxSeq, Kind: KindClear}).ValidateIdentity(); err != nil {
		t.Errorf("seq 2^63-1: %v", err)
	}
}

// TestVisibleASCIIAgreesWithTheTables: the ASCII shortcut of checkText
// takes exactly the ASCII characters that the Unicode tables find visible.
func TestVisibleASCIIAgreesWithTheTables(t *testing.T) {
	for c := range 0x80 {
		s := string(rune(c))
		if got, want := visibleASCII(s), !invisible(rune(c)); got != want {
			t.Errorf("visibleASCII(%q) = %v, tables say visible %v", s, got, want)
		}
	}
	for _, s := range []string{"", "TEE-01 size=M", "café", "a\u200bb", "\xff"} {
		if visibleASCII(s) && checkTextTables(s) != "" {
			t.Errorf("%q: shortcut takes what the tables refuse", s)
		}
	}
}

// checkTextTables is checkText without the shortcut.
func checkTextTables(s string) string {
	for _, r := range s {
		if invisible(r) {
			return "invisible"
		}
	}
	return ""
}
