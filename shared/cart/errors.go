package cart

import "fmt"

// Code is a stable, machine-readable reason for a rejected operation or a
// warning. Codes are part of the wire protocol: never rename one.
type Code string

// Rejection codes. An operation rejected with one of these changed nothing.
const (
	CodeInvalidOp       Code = "invalid_op"       // unknown kind, missing identity
	CodeInvalidSKU      Code = "invalid_sku"      // empty, too long, control or invisible characters
	CodeInvalidOptions  Code = "invalid_options"  // too many, too long, empty key
	CodeInvalidQuantity Code = "invalid_quantity" // negative, zero where not allowed, absurd
	CodeInvalidDetails  Code = "invalid_details"  // name, image or price out of bounds
	CodeLineNotFound    Code = "line_not_found"   // set or details on a line the cart does not have
	CodeTooManyLines    Code = "too_many_lines"   // the cart has the maximum number of lines
	CodeTooManyClients  Code = "too_many_clients" // the cart keeps seqs for the maximum number of client ids; only known ones may edit
	CodeCartTooLarge    Code = "cart_too_large"   // the cart's lines would pass Limits.MaxCartBytes
)

// Warning codes. An operation with a warning was applied, adjusted as said.
const (
	CodeQuantityClamped Code = "quantity_clamped" // the line reached the per-line maximum
)

// Error is a business rejection of one operation.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Limit comes with out_of_stock, so that a client can tell the
	// shopper which limit they met.
	Limit
}

func (e *Error) Error() string { return "cart: " + string(e.Code) + ": " + e.Message }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Warning reports an adjustment made while applying an operation.
type Warning struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Limit comes with stock_clamped, as with Error's out_of_stock.
	Limit
}

// Limit is the catalog's bound on a SKU that an answer or a notice names:
// Available, how many of the SKU one cart may hold in all, and LimitBy,
// what sets it (LimitStock or LimitPerOrder). Its fields are written in
// the object it is part of.
type Limit struct {
	Available *int   `json:"available,omitempty"`
	LimitBy   string `json:"limit_by,omitempty"`
}

// PerOrder is the catalog's maximum per order, if that is the limit.
func (l Limit) PerOrder() (int, bool) {
	if l.LimitBy == LimitPerOrder && l.Available != nil {
		return *l.Available, true
	}
	return 0, false
}
