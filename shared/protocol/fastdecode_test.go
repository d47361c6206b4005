//go:build !js

package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestDecodeFastReadsWhatClientsSend: the pushes and pings the client
// engine encodes, and the same written by hand in other ways, are read by
// the fast path, as encoding/json reads them.
func TestDecodeFastReadsWhatClientsSend(t *testing.T) {
	inputs := []string{
		`{"type":"ping","t":1764200000000}`,
		`{"type":"ping","t":-5}`,
		`{"type":"push","id":"r1","ops":[]}`,
		` { "type" : "push" ,"ops" : [ { "client" : "c" , "seq" : 1 , "kind" : "add" , "sku" : "X" , "quantity" : -5 } ] } ` + "\n",
		`{"ops":[{"kind":"clear","seq":9,"client":"tab","base":0,"cart":"g_1"}],"type":"push"}`,
		`{"type":"push","ops":[{"client":"c","seq":2,"kind":"add","sku":"T","quantity":1,"base":4,"before":"MUG?size=M"}]}`,
		`{"type":"push","ops":[{"client":"c","seq":18446744073709551615,"kind":"add","sku":"Café ☕","options":{},"details":{}}]}`,
		`{"type":"push","ops":[{"client":"c","seq":1,"kind":"set","sku":"T","options":{"size":"M","colour":"grün"},"quantity":9223372036854775807,` +
			`"details":{"name":"T-shirt","image":"https://shop.example/t.jpg","price":-9223372036854775808,"currency":"JPY"}}]}`,
		`{}`,
		`{"type":"pong"}`,
	}
	for _, name := range []string{"push", "ping"} {
		b, err := Encode(examples[name])
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, string(b))
	}
	for _, in := range inputs {
		var fast Message
		if !decodeFast([]byte(in), &fast) {
			t.Errorf("fast path declined %s", in)
			continue
		}
		slow, err := slowDecode(t, []byte(in))
		if err != nil {
			t.Errorf("encoding/json refused what the fast path read: %s: %v", in, err)
			continue
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Errorf("%s:\nfast %+v\nslow %+v", in, fast, slow)
		}
	}
}

// TestDecodeFastLeavesTheRestToEncodingJSON: whatever the fast path does
// not read exactly as encoding/json does, it declines; Decode's answer is
// then encoding/json's.
func TestDecodeFastLeavesTheRestToEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"type":"hello","protocol":2,"client":"c"}`, // another message type's keys
		`{"Type":"ping"}`,                                       // encoding/json matches keys without case
		`{"type":"ping","type":"pong"}`,                         // a key twice: the last wins there
		`{"type":"push","ops":[{"seq":1,"seq":2}]}`,             // the same inside an op
		`{"type":"push","ops":[{"options":{"a":"1","a":"2"}}]}`, // and in options
		`{"type":"pi\u006eg"}`,                                  // an escape
		`{"type":"ping\u0001"}`,                                 // escaped control character
		"{\"type\":\"pi\x01ng\"}",                               // raw control character
		"{\"type\":\"\xff\"}",                                   // invalid UTF-8
		`{"type":null}`,
		`{"type":"push","ops":null}`,
		`{"type":"push","ops":[{"details":null}]}`,
		`{"type":"ping","t":1.0}`,
		`{"type":"ping","t":1e3}`,
		`{"type":"ping","t":01}`,
		`{"type":"ping","t":-}`,
		`{"type":"ping","t":9223372036854775808}`,
		`{"type":"ping","t":-9223372036854775809}`,
		`{"type":"push","ops":[{"seq":-1}]}`,
		`{"type":"push","ops":[{"seq":18446744073709551616}]}`,
		`{"type":"push","ops":[{"quantity":"1"}]}`,
		`{"type":"ping"} {}`,
		`{"type":"ping"`,
		`{"type":"ping",}`,
		`{"type":"push","ops":[{},]}`,
		`[]`,
		``,
	} {
		var fast Message
		if decodeFast([]byte(in), &fast) {
			t.Errorf("fast path read %q", in)
		}
	}
}

// BenchmarkDecodePush reads the golden push with Decode (the fast path)
// and with encoding/json alone.
func BenchmarkDecodePush(b *testing.B) {
	data, err := Encode(examples["push"])
	if err != nil {
		b.Fatal(err)
	}
	for name, decode := range map[string]func() error{
		"Decode":        func() error { _, err := Decode(data); return err },
		"encoding-json": func() error { _, err := slowDecode(b, data); return err },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := decode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeEscapedPush reads a push the fast path declines (an
// escaped slash, as Swift's JSONEncoder writes URLs) with Decode, which
// then reads it with encoding/json and checks its keys (checkKeys), and
// with encoding/json alone, unchecked (what Decode did before the check).
func BenchmarkDecodeEscapedPush(b *testing.B) {
	data := []byte(`{"type":"push","id":"p7","ops":[{"client":"ios-1","seq":7,"kind":"add","sku":"MUG-1","quantity":1,"options":{"size":"m","color":"blue"},"details":{"name":"Mug","image":"https:\/\/cdn.example.com\/img\/mug.png","price":1200,"currency":"EUR"}}]}`)
	if decodeFast(data, &Message{}) {
		b.Fatal("the fast path read the escaped push")
	}
	for name, decode := range map[string]func() error{
		"Decode":                  func() error { _, err := Decode(data); return err },
		"encoding-json-unchecked": func() error { var m Message; return json.Unmarshal(data, &m) },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := decode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEncodeCart writes the golden pushed cart with Encode (no HTML
// escapes) and with json.Marshal, which Encode was until 2026-12-04.
func BenchmarkEncodeCart(b *testing.B) {
	m := examples["cart-push"]
	for name, encode := range map[string]func() error{
		"Encode":       func() error { _, err := Encode(m); return err },
		"json.Marshal": func() error { _, err := json.Marshal(m); return err },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := encode(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
