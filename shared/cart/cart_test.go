package cart

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLineKeyIgnoresOptionOrderAndCase(t *testing.T) {
	tests := []struct {
		name string
		a, b map[string]string
		same bool
	}{
		{"no options", nil, map[string]string{}, true},
		{"order", map[string]string{"size": "M", "colour": "red"}, map[string]string{"colour": "red", "size": "M"}, true},
		{"key case and spaces", map[string]string{" Size ": "M"}, map[string]string{"size": " M"}, true},
		{"empty value dropped", map[string]string{"size": "M", "gift": ""}, map[string]string{"size": "M"}, true},
		{"different value", map[string]string{"size": "M"}, map[string]string{"size": "L"}, false},
		{"escaping keeps pairs apart", map[string]string{"a": "1&b=2"}, map[string]string{"a": "1", "b": "2"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka, kb := LineKey("SKU-1", tt.a), LineKey("SKU-1", tt.b)
			if (ka == kb) != tt.same {
				t.Fatalf("LineKey(%v)=%q, LineKey(%v)=%q; same=%v, want %v", tt.a, ka, tt.b, kb, ka == kb, tt.same)
			}
		})
	}
}

// step is one op applied in server order, from a device that had seen base.
type step struct {
	dev  string
	op   Op
	want []string // "KEY=QTY" of every line after the step, in cart order
	code Code     // expected rejection, if any
	warn Code     // expected warning, if any
}

func add(sku string, q int, base uint64) Op {
	return Op{Kind: KindAdd, SKU: sku, Quantity: q, Base: base}
}
func set(sku string, q int, base uint64) Op {
	return Op{Kind: KindSet, SKU: sku, Quantity: q, Base: base}
}
func remove(sku string, base uint64) Op { return Op{Kind: KindRemove, SKU: sku, Base: base} }
func clearAll(base uint64) Op           { return Op{Kind: KindClear, Base: base} }

// TestConcurrentCases is the table in docs/semantics.md: each case is a
// sequence of operations in server order with the version each device had
// seen when it made its edit.
func TestConcurrentCases(t *testing.T) {
	lim := DefaultLimits
	lim.MaxQuantity = 10
	lim.MaxLines = 2
	tests := []struct {
		name  string
		steps []step
	}{
		{"concurrent adds of the same line sum", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "B", op: add("X", 2, 0), want: []string{"X=3"}},
		}},
		{"later set in server order wins", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "A", op: set("X", 5, 1), want: []string{"X=5"}},
			{dev: "B", op: set("X", 2, 1), want: []string{"X=2"}},
		}},
		{"remove keeps an add the remover had not seen", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "B", op: add("X", 2, 1), want: []string{"X=3"}},
			{dev: "A", op: remove("X", 1), want: []string{"X=2"}},
		}},
		{"remove of everything seen deletes the line", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "B", op: add("X", 2, 1), want: []string{"X=3"}},
			{dev: "A", op: remove("X", 2), want: []string{}},
		}},
		{"a stale device's set cannot bring a removed line back", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "B", op: remove("X", 1), want: []string{}},
			{dev: "A", op: set("X", 4, 1), want: []string{}, code: CodeLineNotFound},
		}},
		{"a stale device's details cannot bring a removed line back", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "B", op: remove("X", 1), want: []string{}},
			{dev: "A", op: Op{Kind: KindDetails, SKU: "X", Details: &Details{Name: "x"}, Base: 1}, want: []string{}, code: CodeLineNotFound},
		}},
		{"an offline add after a remove adds only itself", []step{
			{dev: "A", op: add("X", 3, 0), want: []string{"X=3"}},
			{dev: "B", op: remove("X", 1), want: []string{}},
			{dev: "A", op: add("X", 1, 1), want: []string{"X=1"}},
		}},
		{"own earlier adds count as seen", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "A", op: add("X", 1, 0), want: []string{"X=2"}},
			{dev: "A", op: remove("X", 0), want: []string{}},
		}},
		{"remove keeps an unseen set", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "B", op: set("X", 4, 1), want: []string{"X=4"}},
			{dev: "A", op: remove("X", 1), want: []string{"X=4"}},
		}},
		{"remove of a missing line is a no-op", []step{
			{dev: "A", op: remove("X", 0), want: []string{}},
		}},
		{"set to zero removes what was seen", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "B", op: add("X", 1, 0), want: []string{"X=2"}},
			{dev: "A", op: set("X", 0, 1), want: []string{"X=1"}},
		}},
		{"clear keeps unseen adds only", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "A", op: add("Y", 1, 1), want: []string{"X=1", "Y=1"}},
			{dev: "B", op: add("Y", 2, 1), want: []string{"X=1", "Y=3"}},
			{dev: "A", op: clearAll(2), want: []string{"Y=2"}},
		}},
		{"sum over the maximum is clamped with a warning", []step{
			{dev: "A", op: add("X", 8, 0), want: []string{"X=8"}},
			{dev: "B", op: add("X", 8, 0), want: []string{"X=10"}, warn: CodeQuantityClamped},
		}},
		{"too many lines is rejected", []step{
			{dev: "A", op: add("X", 1, 0), want: []string{"X=1"}},
			{dev: "A", op: add("Y", 1, 0), want: []string{"X=1", "Y=1"}},
			{dev: "A", op: add("Z", 1, 0), want: []string{"X=1", "Y=1"}, code: CodeTooManyLines},
		}},
		{"negative add is rejected", []step{
			{dev: "A", op: add("X", -1, 0), want: []string{}, code: CodeInvalidQuantity},
		}},
		{"absurd add is rejected", []step{
			{dev: "A", op: add("X", 1_000_000, 0), want: []string{}, code: CodeInvalidQuantity},
		}},
		{"set on a missing line is rejected", []step{
			{dev: "A", op: set("X", 2, 0), want: []string{}, code: CodeLineNotFound},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Cart{ID: "c"}
			for i, st := range tt.steps {
				st.op.Client, st.op.Seq = st.dev+"-tab", uint64(i+1)
				before := c.Version
				warns, err := c.Apply(st.op, st.dev, lim)
				switch {
				case st.code != "" && (err == nil || err.Code != st.code):
					t.Fatalf("step %d: err = %v, want code %s", i, err, st.code)
				case st.code == "" && err != nil:
					t.Fatalf("step %d: unexpected rejection %v", i, err)
				case st.code != "" && c.Version != before:
					t.Fatalf("step %d: rejected op moved version %d -> %d", i, before, c.Version)
				case st.code == "" && c.Version != before+1:
					t.Fatalf("step %d: version %d -> %d, want +1", i, before, c.Version)
				}
				if st.warn != "" && (len(warns) != 1 || warns[0].Code != st.warn) {
					t.Fatalf("step %d: warnings = %v, want %s", i, warns, st.warn)
				}
				if got := summary(c); strings.Join(got, ",") != strings.Join(st.want, ",") {
					t.Fatalf("step %d (%s %s): cart = %v, want %v", i, st.dev, st.op.Kind, got, st.want)
				}
			}
		})
	}
}

func summary(c *Cart) []string {
	out := []string{}
	for _, l := range c.Lines {
		out = append(out, l.Key+"="+itoa(l.Quantity))
	}
	return out
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestValidateRejectsBadInput(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name string
		op   Op
		code Code
	}{
		{"no client", Op{Seq: 1, Kind: KindAdd, SKU: "X", Quantity: 1}, CodeInvalidOp},
		{"zero seq", Op{Client: "c", Kind: KindAdd, SKU: "X", Quantity: 1}, CodeInvalidOp},
		{"unknown kind", Op{Client: "c", Seq: 1, Kind: "explode", SKU: "X"}, CodeInvalidOp},
		{"empty sku", Op{Client: "c", Seq: 1, Kind: KindAdd, Quantity: 1}, CodeInvalidSKU},
		{"long sku", Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: long, Quantity: 1}, CodeInvalidSKU},
		{"control char sku", Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "a\x00b", Quantity: 1}, CodeInvalidSKU},
		{"zero add", Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "X"}, CodeInvalidQuantity},
		{"negative set", Op{Client: "c", Seq: 1, Kind: KindSet, SKU: "X", Quantity: -3}, CodeInvalidQuantity},
		{"remove with quantity", Op{Client: "c", Seq: 1, Kind: KindRemove, SKU: "X", Quantity: 2}, CodeInvalidQuantity},
		{"clear with line", Op{Client: "c", Seq: 1, Kind: KindClear, SKU: "X"}, CodeInvalidOp},
		{"long option", Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "X", Quantity: 1, Options: map[string]string{"k": long}}, CodeInvalidOptions},
		{"duplicate option after normalizing", Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "X", Quantity: 1, Options: map[string]string{"Size": "M", "size": "L"}}, CodeInvalidOptions},
		{"long name", Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "X", Quantity: 1, Details: &Details{Name: long}}, CodeInvalidDetails},
		{"negative price", Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "X", Quantity: 1, Details: &Details{Price: -1}}, CodeInvalidDetails},
		{"bad currency", Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "X", Quantity: 1, Details: &Details{Price: 1, Currency: "euro"}}, CodeInvalidDetails},
		{"script image", Op{Client: "c", Seq: 1, Kind: KindAdd, SKU: "X", Quantity: 1, Details: &Details{Image: "javascript:alert(1)"}}, CodeInvalidDetails},
		{"details without details", Op{Client: "c", Seq: 1, Kind: KindDetails, SKU: "X"}, CodeInvalidDetails},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkRefused(t, tt.op, tt.code) })
	}
}

// checkRefused applies op to an empty cart and checks that it is refused
// with code and changes nothing.
func checkRefused(t testing.TB, op Op, code Code) {
	t.Helper()
	c := &Cart{ID: "c"}
	_, err := c.Apply(op, "A", DefaultLimits)
	if err == nil || err.Code != code {
		t.Fatalf("Apply = %v, want code %s", err, code)
	}
	if c.Version != 0 || len(c.Lines) != 0 {
		t.Fatalf("rejected op changed the cart: %+v", c)
	}
}

func TestPublicDropsBookkeepingAndCloneIsDeep(t *testing.T) {
	c := &Cart{ID: "c"}
	if _, err := c.Apply(Op{Client: "a", Seq: 1, Kind: KindAdd, SKU: "X", Quantity: 2, Options: map[string]string{"size": "M"}}, "A", DefaultLimits); err != nil {
		t.Fatal(err)
	}
	p := c.Public()
	if len(p.Lines[0].Contribs) != 0 {
		t.Fatalf("Public kept contribs: %+v", p.Lines[0].Contribs)
	}
	if len(c.Lines[0].Contribs) != 1 {
		t.Fatalf("Public changed the original")
	}
	cl := c.Clone()
	cl.Lines[0].Options["size"] = "L"
	cl.Lines[0].Quantity = 9
	if c.Lines[0].Options["size"] != "M" || c.Lines[0].Quantity != 2 {
		t.Fatalf("Clone is shallow")
	}
	if got := c.Items(); got != 2 {
		t.Fatalf("Items = %d, want 2", got)
	}
}

// TestApplyAsLinkedDevice: a device's contributions under the id it had
// before (named by a prefix, its link) count as its own for a remove, a
// clear and a set to 0; another device's later contributions survive them,
// and a link too short to be one counts for nothing.
func TestApplyAsLinkedDevice(t *testing.T) {
	const old, phone = "0123456789abcdefaaaaaaaaaaaaaaaa", "fedcba9876543210fedcba9876543210"
	for _, kind := range []Kind{KindRemove, KindClear, KindSet} {
		c := &Cart{}
		mustApply := func(op Op, dev Device) {
			t.Helper()
			if _, e := c.ApplyAs(op, dev, DefaultLimits); e != nil {
				t.Fatalf("%s: %v", kind, e)
			}
		}
		mustApply(Op{Client: "a", Seq: 1, Kind: KindAdd, SKU: "A", Quantity: 2}, Device{ID: old})
		mustApply(Op{Client: "p", Seq: 1, Kind: KindAdd, SKU: "A", Quantity: 1}, Device{ID: phone})
		op := Op{Client: "a", Seq: 2, Kind: kind, SKU: "A"}
		if kind == KindClear {
			op.SKU = ""
		}
		// Under its new id alone, or with a link too short, the device
		// has seen nothing: nothing goes.
		for _, dev := range []Device{{ID: "new"}, {ID: "new", Link: old[:MinLinkLen-1]}, {ID: "new", Link: old[16:]}} {
			before := c.Clone()
			if _, e := before.ApplyAs(op, dev, DefaultLimits); e != nil || before.Line(LineKey("A", nil)).Quantity != 3 {
				t.Fatalf("%s by %+v: %v, %+v", kind, dev, e, before.Lines)
			}
		}
		mustApply(op, Device{ID: "new", Link: old[:MinLinkLen]})
		if l := c.Line(LineKey("A", nil)); l == nil || l.Quantity != 1 {
			t.Fatalf("%s by the device under its new id: lines %+v, want the phone's 1 A", kind, c.Lines)
		}
	}
}
