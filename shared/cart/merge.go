package cart

import "fmt"

// Policy says how a device's guest cart meets the user's cart at login.
type Policy string

// Login merge policies.
const (
	// PolicyMerge keeps the lines of both carts; a line in both gets the
	// sum of the quantities, clamped to the limits with a warning.
	PolicyMerge Policy = "merge"
	// PolicyReplace makes the guest cart the user's cart.
	PolicyReplace Policy = "replace"
	// PolicyKeep keeps the user's cart as it is; the guest cart is set
	// aside.
	PolicyKeep Policy = "keep"
	// PolicyChoose changes nothing until the shopper picks one of the
	// others, having seen both carts.
	PolicyChoose Policy = "choose"
)

// Valid reports whether p is a known policy.
func (p Policy) Valid() bool {
	switch p {
	case PolicyMerge, PolicyReplace, PolicyKeep, PolicyChoose:
		return true
	}
	return false
}

// Warning codes of a merge.
const (
	// CodeLinesDropped: the user's cart reached the maximum number of
	// lines, so some guest lines could not be added.
	CodeLinesDropped Code = "lines_dropped"
	// CodeDetailsDropped: a guest line was summed into a line of the
	// user's cart that had no details, and the guest's details (name,
	// price, image) would have taken the cart past its size limit, so the
	// line stays without them.
	CodeDetailsDropped Code = "details_dropped"
)

// MergeResult says what a merge did, for the shopper to review.
type MergeResult struct {
	Policy Policy `json:"policy"`
	// Added is how many guest lines were added as new lines; Combined how
	// many were summed into a line the user's cart had; Replaced how many
	// lines the user's cart lost to a replace.
	Added    int `json:"added"`
	Combined int `json:"combined"`
	Replaced int `json:"replaced"`
	// Items is the number of guest items that reached the user's cart.
	Items    int       `json:"items"`
	Warnings []Warning `json:"warnings,omitempty"`
}

// Merge applies the login merge of guest into c (the user's cart) under
// policy, as one change: if it changes c, c's version advances by exactly
// one. device is the device that logged in; the merged quantities count as
// its contributions. PolicyChoose is not a merge: it is an error here.
func (c *Cart) Merge(guest *Cart, policy Policy, device string, lim Limits) (MergeResult, error) {
	res := MergeResult{Policy: policy}
	next := c.Version + 1
	changed := false
	switch policy {
	case PolicyKeep:
		return res, nil
	case PolicyReplace:
		if len(guest.Lines) == 0 {
			// Nothing to replace the user's cart with: an emptied guest
			// cart never empties an account.
			return res, nil
		}
		res.Replaced = len(c.Lines)
		c.Lines = nil
		for _, g := range guest.Lines {
			l := g.clone()
			// An add of the guest's quantity to a line built anew: a
			// checkout made before the login and completed after it
			// leaves these (CompleteCheckout), as it leaves a merge's.
			l.Contribs = []Contrib{{Version: next, Device: device, N: l.Quantity}}
			c.Lines = append(c.Lines, l)
			res.Added++
			res.Items += l.Quantity
		}
		changed = res.Replaced > 0 || res.Added > 0
	case PolicyMerge:
		for _, g := range guest.Lines {
			l := c.Line(g.Key)
			if l == nil {
				if len(c.Lines) >= lim.MaxLines {
					res.Warnings = append(res.Warnings, Warning{Code: CodeLinesDropped,
						Message: fmt.Sprintf("%s was not added: a cart holds at most %d lines", g.SKU, lim.MaxLines)})
					continue
				}
				if e := c.fits(g, nil, lim); e != nil {
					res.Warnings = append(res.Warnings, Warning{Code: CodeLinesDropped,
						Message: fmt.Sprintf("%s was not added: %s", g.SKU, e.Message)})
					continue
				}
				l = g.clone()
				l.Quantity = 0
				l.Contribs = nil
				c.Lines = append(c.Lines, l)
				res.Added++
			} else {
				res.Combined++
				if l.Details == (Details{}) && g.Details != (Details{}) {
					if e := c.fitsDetails(l, g.Details, lim); e != nil {
						res.Warnings = append(res.Warnings, Warning{Code: CodeDetailsDropped,
							Message: fmt.Sprintf("%s was added without its details: %s", g.SKU, e.Message)})
					} else {
						l.Details = g.Details
					}
				}
			}
			q := l.Quantity + g.Quantity
			if q > lim.MaxQuantity {
				res.Warnings = append(res.Warnings, Warning{Code: CodeQuantityClamped,
					Message: fmt.Sprintf("%s limited to the maximum of %d per line", g.SKU, lim.MaxQuantity)})
				q = lim.MaxQuantity
			}
			// What reached the line: a sum capped at the maximum brings
			// less than the guest had (a removal replaying the merge, or
			// an order of the guest's checkout, counts only that).
			added := q - l.Quantity
			res.Items += added
			l.Quantity = q
			l.contribute(Contrib{Version: next, Device: device, N: added}, lim)
			changed = true
		}
	default:
		return res, fmt.Errorf("cart: merge policy %q is not a merge", policy)
	}
	if changed {
		c.Version = next
	}
	return res, nil
}
