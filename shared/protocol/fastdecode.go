//go:build !js

package protocol

import (
	"math"
	"unicode/utf8"

	"github.com/cartsync/cartsync/shared/cart"
)

// decodeFast reads the messages clients send most, push and ping, as
// encoders write them, without reflection: a third of the server's JSON
// work per edit went to reading pushes with encoding/json. It reports false
// for anything it does not read, and Decode then reads the message with
// encoding/json: another key (of any message type), a key twice, an escape
// or a control character in a string, invalid UTF-8, null, a number with a
// fraction or an exponent, anything after the object, or more than
// MaxMessageBytes. Where it reports true, m is what encoding/json makes of
// data (FuzzDecode compares the two).
//
// The widget (js) never reads a push: there decodeFast declines everything
// (fastdecode_js.go), and the wasm does not carry it.
func decodeFast(data []byte, m *Message) bool {
	if len(data) > MaxMessageBytes {
		return false // encoding/json's path says why
	}
	s := scanner{b: data}
	var seen keys
	ok := s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "type":
			m.Type, ok = s.str()
			return seen.once(0) && ok
		case "id":
			m.ID, ok = s.str()
			return seen.once(1) && ok
		case "t":
			m.T, ok = s.int(math.MinInt64, math.MaxInt64)
			return seen.once(2) && ok
		case "ops":
			return seen.once(3) && s.ops(m)
		}
		return false
	})
	s.space()
	return ok && s.i == len(s.b)
}

// keys are the keys of an object read so far, by number.
type keys uint16

// once marks key n read, and reports false if it was already: encoding/json
// takes the last of a key given twice, the fast path declines.
func (k *keys) once(n uint) bool {
	if *k&(1<<n) != 0 {
		return false
	}
	*k |= 1 << n
	return true
}

// scanner reads JSON from b at i. Each method skips the white space before
// its value and reports false for input it does not read.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next reports whether the next byte after white space is c, and takes it
// if so.
func (s *scanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object, calling field for each key with the scanner at
// the key's value; field reads the value.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		key, ok := s.raw()
		if !ok || !s.next(':') || !field(key) {
			return false
		}
		if s.next('}') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

// raw reads a string with neither escapes nor control characters, in valid
// UTF-8, and returns its bytes (in b: not to be kept).
func (s *scanner) raw() ([]byte, bool) {
	if !s.next('"') {
		return nil, false
	}
	start, ascii := s.i, true
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			v := s.b[start:s.i]
			s.i++
			return v, ascii || utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

func (s *scanner) str() (string, bool) {
	v, ok := s.raw()
	return string(v), ok
}

// int reads an integer in [lo, hi]: an optional minus (when lo < 0) and
// digits without leading zeros, followed by a delimiter.
func (s *scanner) int(lo, hi int64) (int64, bool) {
	s.space()
	neg := s.i < len(s.b) && s.b[s.i] == '-' && lo < 0
	if neg {
		s.i++
	}
	u, ok := s.digits()
	if !ok {
		return 0, false
	}
	if neg {
		if u > uint64(-(lo+1))+1 {
			return 0, false
		}
		return -int64(u), true
	}
	if u > uint64(hi) {
		return 0, false
	}
	return int64(u), true
}

// uint reads a non-negative integer of up to 64 bits, as int does.
func (s *scanner) uint() (uint64, bool) {
	s.space()
	return s.digits()
}

// digits reads the digits of a number of up to 64 bits, without leading
// zeros, followed by a delimiter.
func (s *scanner) digits() (uint64, bool) {
	start := s.i
	var u uint64
	for ; s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9'; s.i++ {
		d := uint64(s.b[s.i] - '0')
		if u > (math.MaxUint64-d)/10 {
			return 0, false
		}
		u = u*10 + d
	}
	n := s.i - start
	return u, n > 0 && !(n > 1 && s.b[start] == '0') && s.delimited()
}

// delimited reports whether a number ends here: the input's end, white
// space, a comma or a closing bracket (not a fraction or an exponent).
func (s *scanner) delimited() bool {
	if s.i == len(s.b) {
		return true
	}
	switch s.b[s.i] {
	case ' ', '\t', '\n', '\r', ',', '}', ']':
		return true
	}
	return false
}

// ops reads the array of a push's operations into m.Ops (empty, not nil,
// for [], as encoding/json makes it).
func (s *scanner) ops(m *Message) bool {
	if !s.next('[') {
		return false
	}
	m.Ops = make([]cart.Op, 0, 1)
	if s.next(']') {
		return true
	}
	for {
		m.Ops = append(m.Ops, cart.Op{})
		if !s.op(&m.Ops[len(m.Ops)-1]) {
			return false
		}
		if s.next(']') {
			return true
		}
		if !s.next(',') {
			return false
		}
	}
}

func (s *scanner) op(op *cart.Op) bool {
	var seen keys
	return s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "client":
			op.Client, ok = s.str()
			return seen.once(0) && ok
		case "seq":
			op.Seq, ok = s.uint()
			return seen.once(1) && ok
		case "kind":
			var k string
			k, ok = s.str()
			op.Kind = cart.Kind(k)
			return seen.once(2) && ok
		case "sku":
			op.SKU, ok = s.str()
			return seen.once(3) && ok
		case "options":
			return seen.once(4) && s.options(op)
		case "quantity":
			var q int64
			q, ok = s.int(math.MinInt, math.MaxInt)
			op.Quantity = int(q)
			return seen.once(5) && ok
		case "details":
			op.Details = new(cart.Details)
			return seen.once(6) && s.details(op.Details)
		case "base":
			op.Base, ok = s.uint()
			return seen.once(7) && ok
		case "cart":
			op.Cart, ok = s.str()
			return seen.once(8) && ok
		case "before":
			op.Before, ok = s.str()
			return seen.once(9) && ok
		}
		return false
	})
}

// options reads an object of strings (an empty map, not nil, for {}).
func (s *scanner) options(op *cart.Op) bool {
	op.Options = map[string]string{}
	return s.object(func(key []byte) bool {
		if _, dup := op.Options[string(key)]; dup {
			return false
		}
		k := string(key)
		v, ok := s.str()
		op.Options[k] = v
		return ok
	})
}

func (s *scanner) details(d *cart.Details) bool {
	var seen keys
	return s.object(func(key []byte) bool {
		var ok bool
		switch string(key) {
		case "name":
			d.Name, ok = s.str()
			return seen.once(0) && ok
		case "image":
			d.Image, ok = s.str()
			return seen.once(1) && ok
		case "price":
			d.Price, ok = s.int(math.MinInt64, math.MaxInt64)
			return seen.once(2) && ok
		case "currency":
			d.Currency, ok = s.str()
			return seen.once(3) && ok
		}
		return false
	})
}
