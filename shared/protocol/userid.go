package protocol

import (
	"unicode"
	"unicode/utf8"
)

// MaxUserIDBytes is the longest user id (a user token's "sub").
const MaxUserIDBytes = 256

// ValidUserID reports whether s can be a user id: 1 to MaxUserIDBytes of
// printable UTF-8, compared byte for byte (a token's "sub" is an opaque
// string: two spellings of one name are two users), and neither "." nor
// "..", which no URL path can name (the backend API reaches a user's cart
// at /v1/backend/users/{user}/cart). A user the shopper's side accepts is
// one the storefront's backend can read and erase.
func ValidUserID(s string) bool {
	if s == "" || len(s) > MaxUserIDBytes || !utf8.ValidString(s) || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
