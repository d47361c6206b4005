package cart

import "unicode/utf8"

// The size of a cart as the server sends it. Limits.MaxCartBytes bounds
// it: the other limits count the bytes of each text, and JSON's escapes
// (a quote takes 2 bytes, U+2028 takes 6) and the line key's
// percent-encoding of options (3 bytes a byte) could otherwise make a
// cart within them too large for any client to read.

// maxCartBytes is lim.MaxCartBytes, or the default for 0.
func maxCartBytes(lim Limits) int {
	if lim.MaxCartBytes > 0 {
		return lim.MaxCartBytes
	}
	return DefaultLimits.MaxCartBytes
}

// fits reports, as a cart_too_large error, whether the cart's lines would
// pass the limit with l added, or in place of old (nil: l is new).
// Lines only get larger by an add of a new line or new details. It keeps
// the sizes of the cart's own lines, never of l (another cart's line, at a
// login merge, which must not change).
func (c *Cart) fits(l, old *Line, lim Limits) *Error {
	max := maxCartBytes(lim)
	n, ok := l.keptWireBytes()
	if !ok {
		n = l.wireBytes()
	}
	for _, o := range c.Lines {
		if o != old {
			n += o.WireBytes()
		}
	}
	if n > max {
		return errorf(CodeCartTooLarge, "the cart's lines would take %d bytes, more than the %d a cart holds", n, max)
	}
	return nil
}

// fitsDetails is fits with line l of the cart given details d.
func (c *Cart) fitsDetails(l *Line, d Details, lim Limits) *Error {
	grown := *l
	grown.Details = d
	return c.fits(&grown, l, lim)
}

// wireSize is a line's WireBytes, kept with the details it was worked out
// with: a line's key, SKU and options never change, its details may.
type wireSize struct {
	details Details
	n       int
}

// WireBytes is at least the size of the line in JSON, as the server sends
// it (no bookkeeping, no HTML escapes), for any quantity. It is worked out
// once for the line's details.
func (l *Line) WireBytes() int {
	if n, ok := l.keptWireBytes(); ok {
		return n
	}
	l.wire = wireSize{l.Details, l.wireBytes()}
	return l.wire.n
}

// keptWireBytes returns the size kept for the line, if it is for its
// details as they are.
func (l *Line) keptWireBytes() (int, bool) {
	return l.wire.n, l.wire.n > 0 && l.wire.details == l.Details
}

func (l *Line) wireBytes() int {
	// {"key":,"sku":,"options":{},"quantity":999999,"details":{"name":,
	// "image":,"price":,"currency":}} and commas: a fixed part.
	n := 120 + jsonStringBytes(l.Key) + jsonStringBytes(l.SKU) +
		jsonStringBytes(l.Details.Name) + jsonStringBytes(l.Details.Image) +
		jsonStringBytes(l.Details.Currency) + 20 // the price's digits, at most
	for k, v := range l.Options {
		n += jsonStringBytes(k) + jsonStringBytes(v) + 2 // : and ,
	}
	return n
}

// jsonStringBytes is the size of s as a JSON string, quotes included, as
// encoding/json writes it without HTML escapes.
func jsonStringBytes(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6 // \ufffd
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}
