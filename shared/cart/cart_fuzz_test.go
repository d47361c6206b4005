package cart_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/cartsync/cartsync/shared/cart"
)

// The fuzz targets of the cart rules. Each input is a script: a few bytes
// per operation that pick its kind, line, quantity, device and base from
// tables of good and bad values, so the fuzzer explores sequences of edits
// rather than JSON syntax (the protocol decoder has its own target). Every
// accepted operation goes to a reference model, written plainly from
// docs/semantics.md; every rejected one must leave the cart as it was.

// fuzzLimits are small, so that a short script reaches every limit.
var fuzzLimits = cart.Limits{
	MaxQuantity:  20,
	MaxLines:     4,
	MaxSKU:       16,
	MaxOptions:   3,
	MaxOptionLen: 8,
	MaxName:      16,
	MaxImage:     32,
	MaxPrice:     1000,
	MaxContribs:  1 << 20, // the model keeps every contribution
}

var fuzzSKUs = []string{
	"mug", "tea", "jam", "Mug", "cup-1", "é",
	"", " mug", "mug ", "a?b", "a&b", "\x00", "\xff", "tab\t", strings.Repeat("x", 17),
}

var fuzzOptions = []map[string]string{
	nil,
	{"size": "L"},
	{"Size": " L "},
	{"size": "M"},
	{"size": "L", "color": "red"},
	{"COLOR": "red", " size": "L"},
	{"size": ""}, // no option at all once normalized
	{"size": "L", "color": "red", "fit": "slim"},
	{"a": "1", "b": "2", "c": "3", "d": "4"}, // too many
	{"": "x"},
	{" ": "x"},
	{"size": "too long value"},
	{"size": "L", "Size": "M"}, // the same key twice
	{"size": "\x01"},
	{"size": "\xff"},
	{"größe": "L"},
}

var fuzzDetails = []*cart.Details{
	nil,
	{Name: "Mug", Price: 250, Currency: "EUR"},
	{Name: "Tea", Image: "https://x.example/t"},
	{Image: "/img/jam.png", Price: 1000},
	{Price: -1},
	{Price: 1001},
	{Currency: "eur"},
	{Currency: "EURO"},
	{Name: "bell\a"},
	{Image: "javascript:x"},
	{Name: strings.Repeat("n", 17)},
}

var fuzzKinds = []cart.Kind{
	cart.KindAdd, cart.KindAdd, cart.KindSet, cart.KindRemove, cart.KindClear,
	cart.KindDetails, cart.KindMerge, "", "ADD",
}

// fuzzQuantity maps a byte to a quantity around the limits, with a few
// absurd ones.
func fuzzQuantity(b byte) int {
	switch b {
	case 255:
		return math.MaxInt
	case 254:
		return math.MinInt
	case 253:
		return 1 << 40
	}
	return int(int8(b))
}

// script turns fuzz bytes into operations, six bytes each.
type script struct {
	data []byte
	seqs map[string]uint64
}

const opBytes = 6

// next decodes the next operation, made by one of three devices when the
// cart is at version v, and the device it came from.
func (s *script) next(v uint64) (cart.Op, string, bool) {
	if len(s.data) < opBytes {
		return cart.Op{}, "", false
	}
	b := s.data[:opBytes]
	s.data = s.data[opBytes:]
	dev := fmt.Sprint("dev", b[4]%3)
	client := "c-" + dev
	op := cart.Op{
		Client:   client,
		Kind:     fuzzKinds[int(b[0])%len(fuzzKinds)],
		SKU:      fuzzSKUs[int(b[1])%len(fuzzSKUs)],
		Options:  maps.Clone(fuzzOptions[int(b[2])%len(fuzzOptions)]),
		Quantity: fuzzQuantity(b[3]),
		Details:  fuzzDetails[int(b[5])%len(fuzzDetails)],
	}
	// The base is how far behind the device was; past 60, ahead of the
	// cart (a client lying about what it saw).
	if back := uint64(b[4] / 3); back <= 60 {
		op.Base = v - min(v, back)
	} else {
		op.Base = v + back
	}
	if op.Kind == cart.KindClear && b[1]&1 == 0 {
		op.SKU, op.Options = "", nil
	}
	if b[5]&0x80 == 0 {
		s.seqs[client]++
		op.Seq = s.seqs[client]
	} // else seq 0: an op without identity
	return op, dev, true
}

// model is the reference: each line's live contributions and details.
type model struct {
	lim     cart.Limits
	lines   map[string][]event
	details map[string]cart.Details
	order   []string // line keys in the order they were created
}

type event struct {
	version uint64
	device  string
	set     bool
	n       int
}

func newModel(lim cart.Limits) *model {
	return &model{lim: lim, lines: map[string][]event{}, details: map[string]cart.Details{}}
}

func (m *model) qty(key string) int {
	q := 0
	for _, e := range m.lines[key] {
		if e.set {
			q = e.n
		} else {
			q += e.n
		}
		q = min(q, m.lim.MaxQuantity)
	}
	return q
}

func (m *model) has(key string) bool { _, ok := m.lines[key]; return ok }

func (m *model) drop(key string) {
	delete(m.lines, key)
	delete(m.details, key)
	for i, k := range m.order {
		if k == key {
			m.order = append(m.order[:i], m.order[i+1:]...)
			break
		}
	}
}

func (m *model) removeSeen(key string, base uint64, dev string) {
	var keep []event
	for _, e := range m.lines[key] {
		if e.version > base && e.device != dev {
			keep = append(keep, e)
		}
	}
	m.lines[key] = keep
	if m.qty(key) <= 0 {
		m.drop(key)
	}
}

// apply applies an accepted op at version; it reports whether the line's
// quantity was clamped.
func (m *model) apply(op cart.Op, dev string, version uint64) (clamped bool) {
	key := op.Key()
	switch op.Kind {
	case cart.KindAdd:
		if !m.has(key) {
			m.order = append(m.order, key)
		}
		clamped = m.qty(key)+op.Quantity > m.lim.MaxQuantity
		m.lines[key] = append(m.lines[key], event{version, dev, false, op.Quantity})
		if op.Details != nil {
			m.details[key] = *op.Details
		}
	case cart.KindSet:
		if op.Quantity == 0 {
			m.removeSeen(key, op.Base, dev)
		} else {
			m.lines[key] = append(m.lines[key], event{version, dev, true, op.Quantity})
		}
	case cart.KindRemove:
		if m.has(key) {
			m.removeSeen(key, op.Base, dev)
		}
	case cart.KindClear:
		for _, k := range append([]string(nil), m.order...) {
			m.removeSeen(k, op.Base, dev)
		}
	case cart.KindDetails:
		m.details[key] = *op.Details
	}
	return clamped
}

// check compares the cart with the model: the same lines in the same
// order, quantities and details.
func (m *model) check(t *testing.T, c *cart.Cart) {
	t.Helper()
	var got, want []string
	for _, l := range c.Lines {
		got = append(got, fmt.Sprintf("%s=%d %+v", l.Key, l.Quantity, l.Details))
	}
	for _, k := range m.order {
		want = append(want, fmt.Sprintf("%s=%d %+v", k, m.qty(k), m.details[k]))
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cart differs from the model:\ncart  %q\nmodel %q", got, want)
	}
}

// checkCart checks what must hold of any cart Apply and Merge produce.
func checkCart(t *testing.T, c *cart.Cart, lim cart.Limits) {
	t.Helper()
	if len(c.Lines) > lim.MaxLines {
		t.Fatalf("%d lines, limit %d", len(c.Lines), lim.MaxLines)
	}
	seen := map[string]bool{}
	for _, l := range c.Lines {
		if seen[l.Key] {
			t.Fatalf("two lines with key %q", l.Key)
		}
		seen[l.Key] = true
		if l.Quantity < 1 || l.Quantity > lim.MaxQuantity {
			t.Fatalf("line %q has quantity %d, want 1 to %d", l.Key, l.Quantity, lim.MaxQuantity)
		}
		if k := cart.LineKey(l.SKU, l.Options); k != l.Key {
			t.Fatalf("line %q: LineKey of its sku and options is %q", l.Key, k)
		}
		if len(l.Contribs) > lim.MaxContribs {
			t.Fatalf("line %q keeps %d contributions, limit %d", l.Key, len(l.Contribs), lim.MaxContribs)
		}
		checkStored(t, l, lim)
	}
}

// checkStored checks that a stored line's strings are valid UTF-8 without
// control characters, within the limits, and its options normalized.
func checkStored(t *testing.T, l *cart.Line, lim cart.Limits) {
	t.Helper()
	str := func(what, s string, maxLen int, empty bool) {
		t.Helper()
		if !utf8.ValidString(s) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
			t.Fatalf("line %q: stored %s %q is not printable UTF-8", l.Key, what, s)
		}
		if len(s) > maxLen {
			t.Fatalf("line %q: stored %s %q is %d bytes, limit %d", l.Key, what, s, len(s), maxLen)
		}
		if !empty && s == "" {
			t.Fatalf("line %q: empty %s", l.Key, what)
		}
	}
	str("sku", l.SKU, lim.MaxSKU, false)
	if len(l.Options) > lim.MaxOptions {
		t.Fatalf("line %q: %d options, limit %d", l.Key, len(l.Options), lim.MaxOptions)
	}
	for k, v := range l.Options {
		str("option key", k, lim.MaxOptionLen, false)
		str("option value", v, lim.MaxOptionLen, false)
	}
	if n := cart.NormalizeOptions(l.Options); !reflect.DeepEqual(n, l.Options) && len(l.Options) > 0 {
		t.Fatalf("line %q: stored options %q are not normalized (%q)", l.Key, l.Options, n)
	}
	str("name", l.Details.Name, lim.MaxName, true)
	str("image", l.Details.Image, lim.MaxImage, true)
	if l.Details.Price < 0 || l.Details.Price > lim.MaxPrice {
		t.Fatalf("line %q: price %d", l.Key, l.Details.Price)
	}
}

// sameCart reports whether two carts are equal, an empty slice or map
// being the same as none: as stored and sent (what a line keeps for
// itself, its size worked out once, is not the cart's content).
func sameCart(a, b *cart.Cart) bool {
	ja, erra := json.Marshal(canonical(a))
	jb, errb := json.Marshal(canonical(b))
	return erra == nil && errb == nil && bytes.Equal(ja, jb)
}

func canonical(c *cart.Cart) *cart.Cart {
	c = c.Clone()
	if len(c.Lines) == 0 {
		c.Lines = nil
	}
	for _, l := range c.Lines {
		if len(l.Options) == 0 {
			l.Options = nil
		}
		if len(l.Contribs) == 0 {
			l.Contribs = nil
		}
	}
	return c
}

var rejectionCodes = map[cart.Code]bool{
	cart.CodeInvalidOp: true, cart.CodeInvalidSKU: true, cart.CodeInvalidOptions: true,
	cart.CodeInvalidQuantity: true, cart.CodeInvalidDetails: true, cart.CodeLineNotFound: true,
	cart.CodeTooManyLines: true, cart.CodeCartTooLarge: true,
}

func fuzzScripts(f *testing.F) {
	for _, s := range []string{
		"",
		"\x00\x00\x01\x03\x00\x01", // add mug size L x3
		"\x00\x00\x00\x05\x00\x01\x00\x00\x00\x14\x01\x00",                                                                         // add, then clamped add from another device
		"\x00\x00\x00\x05\x00\x00\x03\x00\x00\x00\x04\x00",                                                                         // add, remove by another device with an old base
		"\x00\x00\x00\x02\x00\x00\x02\x00\x00\x07\x01\x00",                                                                         // add, set by another device
		"\x00\x00\x00\x02\x00\x00\x04\x00\x00\x00\x01\x00",                                                                         // add, clear
		"\x00\x01\x00\x01\x00\x00\x00\x02\x00\x01\x00\x00\x00\x03\x00\x01\x00\x00\x00\x04\x00\x01\x00\x00\x00\x05\x00\x01\x00\x00", // too many lines
		"\x02\x00\x00\x03\x00\x00",                                                                                                 // set on a missing line
		"\x05\x00\x00\x00\x00\x01",                                                                                                 // details on a missing line
		"\x00\x0b\x00\x01\x00\x00\x00\x00\x0c\x01\x00\x00",                                                                         // bad sku, duplicate option
		"\x00\x00\x00\xff\x00\x00\x00\x00\x00\xfe\x00\x80",                                                                         // absurd quantities, no seq
	} {
		f.Add([]byte(s))
	}
}

// FuzzApply applies scripts of operations from three devices: accepted ops
// advance the version by one and give the model's cart; rejected ones
// change nothing; every cart is within the limits. A second cart with a
// tiny contribution history checks the same invariants where the model no
// longer applies.
func FuzzApply(f *testing.F) {
	fuzzScripts(f)
	short := fuzzLimits
	short.MaxContribs = 2
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &cart.Cart{ID: "c"}
		c2 := &cart.Cart{ID: "c"}
		m := newModel(fuzzLimits)
		s := &script{data: data, seqs: map[string]uint64{}}
		for {
			op, dev, ok := s.next(c.Version)
			if !ok {
				break
			}
			before := c.Clone()
			warns, err := c.Apply(op, dev, fuzzLimits)
			if err != nil {
				if !rejectionCodes[err.Code] {
					t.Fatalf("%+v: unknown code %q", op, err.Code)
				}
				if !sameCart(c, before) {
					t.Fatalf("%+v rejected (%v) but the cart changed:\nbefore %+v\nafter  %+v", op, err, before, c)
				}
				switch err.Code {
				case cart.CodeLineNotFound:
					if m.has(op.Key()) {
						t.Fatalf("%+v: line_not_found, but the model has the line", op)
					}
				case cart.CodeTooManyLines:
					if len(m.order) < fuzzLimits.MaxLines || m.has(op.Key()) {
						t.Fatalf("%+v: too_many_lines with %d lines in the model", op, len(m.order))
					}
				}
			} else {
				if c.Version != before.Version+1 {
					t.Fatalf("%+v: version %d -> %d", op, before.Version, c.Version)
				}
				clamped := m.apply(op, dev, c.Version)
				if got := len(warns) > 0; got != clamped {
					t.Fatalf("%+v: warnings %v, model clamped %v", op, warns, clamped)
				}
				m.check(t, c)
			}
			checkCart(t, c, fuzzLimits)

			// The same op on a cart that forgets old contributions,
			// where removes keep less than the model would: the
			// invariants still hold.
			before2 := c2.Clone()
			_, err2 := c2.Apply(op, dev, short)
			if err2 != nil && !sameCart(c2, before2) {
				t.Fatalf("%+v rejected (%v) but the short-history cart changed", op, err2)
			}
			checkCart(t, c2, short)
		}
	})
}

// FuzzMerge builds a user cart and a guest cart from two scripts and merges
// them under each policy, comparing with a plain model of each policy:
// keep changes nothing, replace takes the guest's lines, merge sums
// quantities (clamped) and adds guest lines while there is room; the
// version advances by one exactly when something changed; the guest cart
// is never modified.
func FuzzMerge(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x05\x00\x01"), []byte("\x00\x00\x00\x03\x01\x02\x00\x01\x00\x02\x01\x00"))
	f.Add([]byte("\x00\x00\x00\x14\x00\x01"), []byte("\x00\x00\x00\x14\x01\x00"))
	f.Add([]byte("\x00\x00\x00\x01\x00\x00\x00\x01\x00\x01\x00\x00\x00\x02\x00\x01\x00\x00"),
		[]byte("\x00\x03\x00\x01\x00\x00\x00\x04\x00\x01\x00\x00\x00\x00\x00\x01\x00\x00"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, user, guest []byte) {
		build := func(id string, data []byte) *cart.Cart {
			c := &cart.Cart{ID: id}
			s := &script{data: data, seqs: map[string]uint64{}}
			for {
				op, dev, ok := s.next(c.Version)
				if !ok {
					return c
				}
				c.Apply(op, id+dev, fuzzLimits)
			}
		}
		for _, p := range []cart.Policy{cart.PolicyMerge, cart.PolicyReplace, cart.PolicyKeep, cart.PolicyChoose, "", "MERGE"} {
			u, g := build("u", user), build("g", guest)
			u0, g0 := u.Clone(), g.Clone()
			res, err := u.Merge(g, p, "login-dev", fuzzLimits)
			if !sameCart(g, g0) {
				t.Fatalf("%s: the guest cart changed", p)
			}
			checkCart(t, u, fuzzLimits)
			if p != cart.PolicyMerge && p != cart.PolicyReplace && p != cart.PolicyKeep {
				if err == nil {
					t.Fatalf("%q: no error", p)
				}
				if !sameCart(u, u0) {
					t.Fatalf("%q: refused but the user cart changed", p)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			want, wantRes := mergeModel(u0, g0, p, fuzzLimits)
			if got := lineSummary(u); got != want {
				t.Fatalf("%s:\ngot  %s\nwant %s", p, got, want)
			}
			gotRes := res
			gotRes.Warnings = nil
			var codes []cart.Code
			for _, w := range res.Warnings {
				codes = append(codes, w.Code)
			}
			if !reflect.DeepEqual(gotRes, wantRes.MergeResult) || !reflect.DeepEqual(codes, wantRes.codes) {
				t.Fatalf("%s: result %+v %v, want %+v %v", p, gotRes, codes, wantRes.MergeResult, wantRes.codes)
			}
			wantVersion := u0.Version
			if wantRes.Added+wantRes.Combined+wantRes.Replaced > 0 {
				wantVersion++
			}
			if u.Version != wantVersion {
				t.Fatalf("%s: version %d -> %d, want %d", p, u0.Version, u.Version, wantVersion)
			}
		}
	})
}

type mergeWant struct {
	cart.MergeResult
	codes []cart.Code
}

// mergeModel is what each policy must give, written plainly.
func mergeModel(user, guest *cart.Cart, p cart.Policy, lim cart.Limits) (string, mergeWant) {
	w := mergeWant{MergeResult: cart.MergeResult{Policy: p}}
	type line struct {
		key string
		q   int
		d   cart.Details
	}
	var lines []line
	for _, l := range user.Lines {
		lines = append(lines, line{l.Key, l.Quantity, l.Details})
	}
	switch p {
	case cart.PolicyReplace:
		if len(guest.Lines) == 0 {
			break // an emptied guest cart never empties the user's
		}
		w.Replaced = len(lines)
		lines = nil
		for _, g := range guest.Lines {
			lines = append(lines, line{g.Key, g.Quantity, g.Details})
			w.Added++
			w.Items += g.Quantity
		}
	case cart.PolicyMerge:
	guestLines:
		for _, g := range guest.Lines {
			for i := range lines {
				if lines[i].key != g.Key {
					continue
				}
				w.Combined++
				q := lines[i].q + g.Quantity
				if q > lim.MaxQuantity {
					q = lim.MaxQuantity
					w.codes = append(w.codes, cart.CodeQuantityClamped)
				}
				w.Items += q - lines[i].q
				lines[i].q = q
				if lines[i].d == (cart.Details{}) {
					lines[i].d = g.Details
				}
				continue guestLines
			}
			if len(lines) >= lim.MaxLines {
				w.codes = append(w.codes, cart.CodeLinesDropped)
				continue
			}
			lines = append(lines, line{g.Key, g.Quantity, g.Details})
			w.Added++
			w.Items += g.Quantity
		}
	}
	var parts []string
	for _, l := range lines {
		parts = append(parts, fmt.Sprintf("%s=%d %+v", l.key, l.q, l.d))
	}
	return strings.Join(parts, " | "), w
}

func lineSummary(c *cart.Cart) string {
	var parts []string
	for _, l := range c.Lines {
		parts = append(parts, fmt.Sprintf("%s=%d %+v", l.Key, l.Quantity, l.Details))
	}
	return strings.Join(parts, " | ")
}

// FuzzLineKey checks line identity over arbitrary strings: normalizing is
// idempotent and the key of normalized options is the key of the options;
// the key does not depend on the order options are given in, and it encodes
// the normalized options without loss (two lines share a key only if they
// are the same line); an add the rules accept stores printable UTF-8 within
// the limits, under that same key.
func FuzzLineKey(f *testing.F) {
	f.Add("mug", "size", "L", "color", "red", "", "")
	f.Add("mug", "Size", " L ", " SIZE", "M", "fit", "")
	f.Add("tea", "a=b", "c&d", "a", "b=c&d", "%41", "+")
	f.Add("jam", "Größe", "Ä", "größe", "ä", "ǅ", "x")
	f.Add("cup", "cafe\u0301", "e\u0301", "caf\u00e9", "\u00e9", "\u212b", "\u00c5")
	f.Add("mug", "\u023a\u023a\u023a", "v", "k\u200b", "\u200bv", "\ufeff", "\u00a0")
	f.Add("\xff", "\xfe", "\x00", "k", "v\x7f", " ", " ")
	f.Fuzz(func(t *testing.T, sku, k1, v1, k2, v2, k3, v3 string) {
		pairs := [][2]string{{k1, v1}, {k2, v2}, {k3, v3}}
		opts := map[string]string{}
		for _, p := range pairs {
			if _, dup := opts[p[0]]; !dup {
				opts[p[0]] = p[1]
			}
		}
		n := cart.NormalizeOptions(opts)
		if again := cart.NormalizeOptions(n); !reflect.DeepEqual(again, n) {
			t.Fatalf("NormalizeOptions not idempotent: %q -> %q -> %q", opts, n, again)
		}
		key := cart.LineKey(sku, n)
		if again := cart.LineKey(sku, cart.NormalizeOptions(n)); again != key {
			t.Fatalf("key of normalized options %q: %q then %q", n, key, again)
		}
		// Options that do not collide once normalized have one key,
		// whatever the order they come in (here: as JSON objects
		// written in two orders).
		distinct := map[string]bool{}
		valid := utf8.ValidString(sku)
		for k, v := range opts {
			for nk := range cart.NormalizeOptions(map[string]string{k: "x"}) {
				distinct[nk] = true
			}
			valid = valid && utf8.ValidString(k) && utf8.ValidString(v)
		}
		if len(distinct) == len(opts) {
			if k := cart.LineKey(sku, opts); k != key {
				t.Fatalf("key of %q is %q, of its normalized form %q", opts, k, key)
			}
			if valid {
				fwd, rev := jsonOp(t, sku, pairs, false), jsonOp(t, sku, pairs, true)
				if fwd.Key() != rev.Key() || fwd.Key() != key {
					t.Fatalf("options in two orders give keys %q and %q, want %q", fwd.Key(), rev.Key(), key)
				}
			}
		}
		// The key encodes the normalized options without loss.
		if bare := cart.LineKey(sku, nil); !strings.ContainsAny(bare, "?&") {
			s, q, _ := strings.Cut(key, "?")
			parsed, err := url.ParseQuery(q)
			if s != bare || err != nil {
				t.Fatalf("key %q does not start with the key %q of its sku alone (%v)", key, bare, err)
			}
			got := map[string]string{}
			for k, vs := range parsed {
				got[k] = strings.Join(vs, "\x00")
			}
			if len(n) == 0 && len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, n) {
				t.Fatalf("key %q decodes to %q, not the normalized options %q", key, got, n)
			}
		}
		// An accepted add stores what the limits allow, under its key.
		c := &cart.Cart{ID: "c"}
		op := cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: sku, Options: opts, Quantity: 1}
		if _, err := c.Apply(op, "dev", cart.DefaultLimits); err != nil {
			return
		}
		if len(c.Lines) != 1 || c.Lines[0].Key != key {
			t.Fatalf("accepted add of %q %q stored %+v, want one line %q", sku, opts, c.Lines, key)
		}
		for range 3 { // map order varies from call to call
			if k := op.Key(); k != key {
				t.Fatalf("accepted op's key %q, then %q", key, k)
			}
		}
		checkCart(t, c, cart.DefaultLimits)
	})
}

// jsonOp decodes an add whose options object lists pairs in order or in
// reverse, as a client may send it.
func jsonOp(t *testing.T, sku string, pairs [][2]string, reverse bool) cart.Op {
	t.Helper()
	var members []string
	seen := map[string]bool{}
	for _, p := range pairs {
		if seen[p[0]] {
			continue
		}
		seen[p[0]] = true
		k, _ := json.Marshal(p[0])
		v, _ := json.Marshal(p[1])
		members = append(members, string(k)+":"+string(v))
	}
	if reverse {
		sort.Sort(sort.Reverse(sort.StringSlice(members)))
	} else {
		sort.Strings(members)
	}
	s, _ := json.Marshal(sku)
	var op cart.Op
	if err := json.Unmarshal([]byte(`{"kind":"add","sku":`+string(s)+`,"options":{`+strings.Join(members, ",")+`}}`), &op); err != nil {
		t.Fatalf("decode op: %v", err)
	}
	return op
}
