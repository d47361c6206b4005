//go:build !js

package protocol

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
)

// What encoding/json takes without a word, a message must not carry: a
// key given twice (it kept the last: a proxy reading the first saw another
// quantity), or two keys naming one field in different letter case ("kind"
// and "KIND": KIND was read). Each is refused malformed, and so are the
// HTTP bodies.
func TestKeysTwiceOrInOtherCaseRefused(t *testing.T) {
	const op = `"client":"c","seq":1,"sku":"X"`
	tests := []struct{ name, in string }{
		{"quantity twice", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"quantity":5}]}`},
		{"kind and KIND", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"KIND":"remove"}]}`},
		{"Base and base", `{"type":"push","ops":[{` + op + `,"kind":"set","quantity":1,"Base":5,"base":2}]}`},
		{"Price and PRICE in details", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"details":{"Price":5,"PRICE":6}}]}`},
		{"an option twice", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"options":{"size":"M","size":"L"}}]}`},
		{"type twice", `{"type":"ping","type":"push"}`},
		{"id and ID", `{"type":"ping","id":"6","ID":"7"}`},
		{"kind and an escaped kind", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"\u006bind":"remove"}]}`},
		{"sku and a Unicode-folded ſku", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"ſku":"Y"}]}`},
		{"option names that read as one (bad bytes, each U+FFFD)", "{\"type\":\"push\",\"ops\":[{" + op + ",\"kind\":\"add\",\"quantity\":1,\"options\":{\"size\xff\":\"M\",\"size\xfe\":\"L\"}}]}"},
		{"a key twice among many", `{"type":"ping","t":5,` + manyKeys(40) + `,"k7":2}`},
		{"after strings holding brackets and quotes", `{"type":"push","ops":[{` + op + `,"kind":"add","quantity":1,"details":{"name":"a\"}]{[\\"},"quantity":2}]}`},
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
	// A lone key in other letter case is read as encoding/json reads it
	// (serializers that write SKU for sku); keys that name no field are
	// ignored with what they hold, repeats included; option names keep
	// their case.
	for _, in := range []string{
		`{"type":"ping","t":5,"From_The_Future":{"x":1,"x":2}}`,
		`{"type":"push","ops":[{"Client":"c","SEQ":1,"Kind":"add","SKU":"X","Quantity":1,"options":{"Size":"M","size":"L"}}]}`,
	} {
		if _, err := Decode([]byte(in)); err != nil {
			t.Errorf("Decode(%s) = %v, want it read", in, err)
		}
	}
}

// manyKeys is n keys k0 ... of an object, without its braces.
func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	return b.String()
}

// Many keys in one object cost each a look-up, not a scan of the ones
// before (one ping of 256 KiB with 29,000 keys took 0.45 s). The test
// asserts what is read; BenchmarkDecodeManyKeys shows the time.
func TestManyKeysReadInLinearTime(t *testing.T) {
	in := []byte(`{"type":"ping","t":5,` + manyKeys(15000) + `}`)
	if _, err := Decode(in); err != nil {
		t.Fatalf("Decode of 15,000 distinct keys: %v", err)
	}
	dup := []byte(`{"type":"ping","t":5,` + manyKeys(15000) + `,"k14999":0}`)
	var pe *Error
	if _, err := Decode(dup); !errors.As(err, &pe) || pe.Code != ErrMalformed {
		t.Fatalf("Decode of 15,000 keys and one again = %v, want malformed", err)
	}
}

// BenchmarkDecodeManyKeys reads a ping of 15,000 keys that name no field.
func BenchmarkDecodeManyKeys(b *testing.B) {
	in := []byte(`{"type":"ping","t":5,` + manyKeys(15000) + `}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(in); err != nil {
			b.Fatal(err)
		}
	}
}
