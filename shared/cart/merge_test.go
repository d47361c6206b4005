package cart

import (
	"strings"
	"testing"
)

func cartOf(t *testing.T, id string, lines ...any) *Cart {
	t.Helper()
	c := &Cart{ID: id}
	for i := 0; i < len(lines); i += 2 {
		op := Op{Client: "t", Seq: uint64(i + 1), Kind: KindAdd, SKU: lines[i].(string), Quantity: lines[i+1].(int),
			Details: &Details{Name: lines[i].(string) + " from " + id}}
		if _, err := c.Apply(op, "dev-"+id, DefaultLimits); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// TestMergePolicies covers each policy over overlapping, disjoint and
// empty carts, with the limits.
func TestMergePolicies(t *testing.T) {
	lim := DefaultLimits
	lim.MaxQuantity = 10
	lim.MaxLines = 3
	tests := []struct {
		name        string
		user, guest []any
		policy      Policy
		want        string // KEY=QTY in cart order
		bump        bool
		warn        Code
		added, comb int
	}{
		{"merge overlapping sums", []any{"A", 2, "B", 1}, []any{"A", 3}, PolicyMerge, "A=5 B=1", true, "", 0, 1},
		{"merge disjoint keeps both", []any{"A", 2}, []any{"C", 1}, PolicyMerge, "A=2 C=1", true, "", 1, 0},
		{"merge empty guest changes nothing", []any{"A", 2}, nil, PolicyMerge, "A=2", false, "", 0, 0},
		{"merge into empty user", nil, []any{"A", 2}, PolicyMerge, "A=2", true, "", 1, 0},
		{"merge clamps the sum with a warning", []any{"A", 8}, []any{"A", 7}, PolicyMerge, "A=10", true, CodeQuantityClamped, 0, 1},
		{"merge over the line limit warns", []any{"A", 1, "B", 1, "C", 1}, []any{"D", 1}, PolicyMerge, "A=1 B=1 C=1", false, CodeLinesDropped, 0, 0},
		{"replace overlapping", []any{"A", 2, "B", 1}, []any{"A", 3}, PolicyReplace, "A=3", true, "", 1, 0},
		{"replace with empty guest changes nothing", []any{"A", 2}, nil, PolicyReplace, "A=2", false, "", 0, 0},
		{"replace both empty changes nothing", nil, nil, PolicyReplace, "", false, "", 0, 0},
		{"keep overlapping", []any{"A", 2}, []any{"A", 3, "C", 1}, PolicyKeep, "A=2", false, "", 0, 0},
		{"keep empty user", nil, []any{"A", 3}, PolicyKeep, "", false, "", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, guest := cartOf(t, "u", tt.user...), cartOf(t, "g", tt.guest...)
			before := user.Version
			guestBefore := guest.Clone()
			res, err := user.Merge(guest, tt.policy, "dev-g", lim)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range user.Lines {
				got = append(got, l.Key+"="+itoa(l.Quantity))
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Fatalf("user cart = %q, want %q", g, tt.want)
			}
			if bumped := user.Version == before+1; bumped != tt.bump || user.Version > before+1 {
				t.Fatalf("version %d -> %d, want bump=%v by one", before, user.Version, tt.bump)
			}
			if tt.warn != "" && (len(res.Warnings) == 0 || res.Warnings[0].Code != tt.warn) {
				t.Fatalf("warnings = %v, want %s", res.Warnings, tt.warn)
			}
			if tt.warn == "" && len(res.Warnings) > 0 {
				t.Fatalf("unexpected warnings %v", res.Warnings)
			}
			if res.Added != tt.added || res.Combined != tt.comb {
				t.Fatalf("added %d combined %d, want %d %d", res.Added, res.Combined, tt.added, tt.comb)
			}
			if len(guest.Lines) != len(guestBefore.Lines) || guest.Version != guestBefore.Version {
				t.Fatalf("merge changed the guest cart")
			}
		})
	}
}

func TestMergeKeepsUserDetailsAndTakesMissingOnes(t *testing.T) {
	user, guest := cartOf(t, "u", "A", 1), cartOf(t, "g", "A", 1, "B", 1)
	if _, err := user.Merge(guest, PolicyMerge, "d", DefaultLimits); err != nil {
		t.Fatal(err)
	}
	if n := user.Line("A").Details.Name; n != "A from u" {
		t.Fatalf("user's details replaced: %q", n)
	}
	if n := user.Line("B").Details.Name; n != "B from g" {
		t.Fatalf("new line lacks the guest's details: %q", n)
	}
}

func TestMergeChooseIsNotAMerge(t *testing.T) {
	user := cartOf(t, "u", "A", 1)
	if _, err := user.Merge(cartOf(t, "g", "A", 1), PolicyChoose, "d", DefaultLimits); err == nil || user.Version != 1 {
		t.Fatalf("choose merged: err %v version %d", err, user.Version)
	}
	if Policy("sum").Valid() || !PolicyChoose.Valid() {
		t.Fatal("Valid is wrong")
	}
}
