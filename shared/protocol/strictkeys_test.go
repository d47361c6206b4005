//go:build !js

package protocol

import (
	"errors"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
)

// What encoding/json takes without a word, a message must not carry: a
// key given twice (it kept the last: a proxy reading the first saw another
// quantity) or a field's name in other letter case ("KIND" was read as
// kind). Each is refused malformed, and so are the HTTP bodies.
func TestKeysTwiceOrInOtherCaseRefused(t *testing.T) {
	const op = `"client":"c","seq":1,"sku":"X"`
	tests := []struct{ name, in string }{
		{"quantity twice", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"quantity":5}]}`},
		{"KIND for kind", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"KIND":"remove"}]}`},
		{"Base for base", `{"type":"push","ops":[{` + op + `,"kind":"set","quantity":1,"Base":5}]}`},
		{"Price in details", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"details":{"Price":5}}]}`},
		{"an option twice", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"options":{"size":"M","size":"L"}}]}`},
		{"type twice", `{"type":"ping","type":"push"}`},
		{"ID for id", `{"type":"ping","ID":"7"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pe *Error
			if _, err := Decode([]byte(tt.in)); !errors.As(err, &pe) || pe.Code != ErrMalformed {
				t.Errorf("Decode = %v, want malformed", err)
			}
			var req struct {
				Ops []cart.Op `json:"ops"`
			}
			if err := DecodeJSON([]byte(tt.in), &req); strings.Contains(tt.in, `"ops"`) && (!errors.As(err, &pe) || pe.Code != ErrMalformed) {
				t.Errorf("DecodeJSON (an HTTP body) = %v, want malformed", err)
			}
		})
	}
	// Keys that name no field are still ignored, whatever their case, and
	// option names keep theirs.
	for _, in := range []string{
		`{"type":"ping","t":5,"From_The_Future":{"x":1,"X":2}}`,
		`{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"options":{"Size":"M","size":"L"}}]}`,
	} {
		if _, err := Decode([]byte(in)); err != nil {
			t.Errorf("Decode(%s) = %v, want it read", in, err)
		}
	}
}
