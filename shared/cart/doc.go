// Package cart is the cart domain: line identity, operations, the rules that
// apply an operation to a cart, limits, and the login merge policies.
//
// It depends on nothing beyond the standard library and golang.org/x/text
// (Unicode normalization), and does no I/O, so the
// same rules run in the sync server (authoritative) and in every client
// (speculative, to show an edit at once).
//
// # Lines
//
// A line is identified by its product (SKU or variant id) and its normalized
// options. Text is brought to Unicode NFC first; options are normalized by
// trimming and lower-casing keys and trimming values; the key does not depend on the order in which options are
// given, so two adds of the same product with the same options are one line.
//
// # Operations
//
// Every edit is an [Op] with a unique identity (client id, sequence number).
// The server applies operations in its own order; each accepted operation
// advances the cart's version by exactly one. The concurrent cases are:
//
//   - add: adds a quantity to a line, creating it. Concurrent adds sum.
//   - set: sets a line's quantity; the later one in server order wins. A set
//     on a line that does not exist is rejected (line_not_found), so a stale
//     device cannot bring a removed line back.
//   - remove: removes what the remover had seen. Contributions (adds and sets)
//     to the line made by other devices after the remover's base version
//     survive; everything else goes.
//   - clear: a remove of every line, with the same rule.
//   - details: sets a line's display details (name, image, unit price).
//
// Limits are enforced by Apply: a malformed or out-of-range operation is
// rejected with an *Error and changes nothing; a sum that would exceed the
// per-line maximum is clamped and reported as a Warning.
package cart
