package protocol

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// examples are one message of each type, as documented in docs/protocol.md.
var examples = map[string]*Message{
	"hello":   {Type: TypeHello, ID: "1", Protocol: 1, Client: "tab-7f3a", DeviceToken: "dGhpcyBpcyBub3QgYSByZWFsIHRva2VuIGF0IGFsbA", Since: 12},
	"welcome": {Type: TypeWelcome, ID: "1", Protocol: 1, CartID: "g_0f1e2d3c4b5a69788796a5b4c3d2e1f0", HeartbeatMS: 25000, Limits: &cart.DefaultLimits},
	"welcome-merged-elsewhere": {Type: TypeWelcome, ID: "1", Protocol: 2, DeviceToken: "bmV3IHRva2VuIGZvciBhIGZyZXNoIGd1ZXN0IGNhcnQ", CartID: "g_9a8b7c6d5e4f30211203f4e5d6c7b8a9",
		PrevCartID: "g_0f1e2d3c4b5a69788796a5b4c3d2e1f0", MergedInto: "u_5d41402abc4b2a76b9719d911017c592", HeartbeatMS: 25000, Limits: &cart.DefaultLimits},
	"push": {Type: TypePush, ID: "2", Ops: []cart.Op{
		{Client: "tab-7f3a", Seq: 4, Kind: cart.KindAdd, SKU: "TEE-01", Options: map[string]string{"size": "M"}, Quantity: 2, Base: 12,
			Details: &cart.Details{Name: "T-shirt", Image: "https://shop.example/tee.jpg", Price: 1999, Currency: "EUR"}},
		{Client: "tab-7f3a", Seq: 5, Kind: cart.KindRemove, SKU: "MUG-02", Base: 12},
	}},
	"ack": {Type: TypeAck, ID: "2", Results: []Result{
		{Client: "tab-7f3a", Seq: 4, Status: StatusApplied, Version: 13},
		{Client: "tab-7f3a", Seq: 5, Status: StatusRejected, Version: 13, Error: &cart.Error{Code: cart.CodeLineNotFound, Message: "the cart has no line \"MUG-02\""}},
	}, Cart: &cart.Cart{ID: "g_0f1e2d3c4b5a69788796a5b4c3d2e1f0", Version: 13, Lines: []*cart.Line{{Key: "TEE-01?size=M", SKU: "TEE-01", Options: map[string]string{"size": "M"}, Quantity: 2, Details: cart.Details{Name: "T-shirt", Price: 1999, Currency: "EUR"}}}}},
	"cart-push":   {Type: TypeCart, Cart: &cart.Cart{ID: "g_0f1e2d3c4b5a69788796a5b4c3d2e1f0", Version: 14, Lines: []*cart.Line{}}, From: 13, By: []OpID{{Client: "tab-99b0", Seq: 1}}},
	"sync":        {Type: TypeSync, ID: "3", Since: 12, Clients: []string{"tab-7f3a", "tab-5c1d"}},
	"cart-sync":   {Type: TypeCart, ID: "3", Cart: &cart.Cart{ID: "g_0f1e2d3c4b5a69788796a5b4c3d2e1f0", Version: 14, Lines: []*cart.Line{}}, Acked: map[string]uint64{"tab-7f3a": 5, "tab-5c1d": 0}},
	"ping":        {Type: TypePing, T: 1764200000000},
	"pong":        {Type: TypePong, T: 1764200000000},
	"hello-login": {Type: TypeHello, ID: "h1", Protocol: 2, Client: "tab-7f3a", DeviceToken: "dGhpcyBpcyBub3QgYSByZWFsIHRva2VuIGF0IGFsbA", UserToken: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl", Policy: cart.PolicyMerge},
	"merge": {Type: TypeMerge, ID: "h1", Merge: &MergeInfo{Status: MergeMerged, Version: 8,
		Result: &cart.MergeResult{Policy: cart.PolicyMerge, Added: 1, Combined: 1, Items: 3}}},
	"merge-choose": {Type: TypeMerge, ID: "h1", Merge: &MergeInfo{Status: MergeChoose, Version: 7,
		Guest: &cart.Cart{ID: "g_0f1e2d3c4b5a69788796a5b4c3d2e1f0", Version: 2, Lines: []*cart.Line{{Key: "MUG-02", SKU: "MUG-02", Quantity: 1, Details: cart.Details{Name: "Mug", Price: 1450, Currency: "EUR"}}}},
		User:  &cart.Cart{ID: "u_5d41402abc4b2a76b9719d911017c592", Version: 7, Lines: []*cart.Line{}}}},
	"choose":        {Type: TypeChoose, ID: "c1", Policy: cart.PolicyReplace},
	"error-expired": {Type: TypeError, ID: "h1", Error: &Error{Code: ErrCartExpired, Message: "the cart on this device expired after a long time without changes; here is a fresh one", Cart: "g_0f1e2d3c4b5a69788796a5b4c3d2e1f0"}},
	"error":         {Type: TypeError, ID: "2", Error: &Error{Code: ErrOutOfOrder, Message: "client tab-7f3a: expected seq 4, got 6", Retryable: true, Expected: &OpID{Client: "tab-7f3a", Seq: 4}}},
}

func TestGolden(t *testing.T) {
	for name, m := range examples {
		t.Run(name, func(t *testing.T) {
			got, err := Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, bytes.TrimSpace(want)) {
				t.Fatalf("encoding changed:\n got %s\nwant %s", got, want)
			}
			back, err := Decode(got)
			if err != nil {
				t.Fatalf("Decode(golden): %v", err)
			}
			again, _ := Encode(back)
			if !bytes.Equal(again, got) {
				t.Fatalf("round trip differs:\n got %s\nwant %s", again, got)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		code ErrorCode
	}{
		{"not json", `hello`, ErrMalformed},
		{"truncated", `{"type":"push"`, ErrMalformed},
		{"trailing", `{"type":"ping"} {"type":"ping"}`, ErrMalformed},
		{"no type", `{"id":"1"}`, ErrMalformed},
		{"wrong field type", `{"type":"push","ops":"many"}`, ErrMalformed},
		{"quantity as string", `{"type":"push","ops":[{"client":"c","seq":1,"kind":"add","sku":"X","quantity":"2"}]}`, ErrMalformed},
		{"quantity overflow", `{"type":"push","ops":[{"client":"c","seq":1,"kind":"add","sku":"X","quantity":1e40}]}`, ErrMalformed},
		{"unknown type", `{"type":"teleport"}`, ErrUnknownType},
		{"old protocol", `{"type":"hello","protocol":-1,"client":"c"}`, ErrUnsupportedVersion},
		{"hello without protocol", `{"type":"hello","client":"c"}`, ErrInvalid},
		{"future protocol", `{"type":"hello","protocol":99,"client":"c"}`, ErrUnsupportedVersion},
		{"hello without client", `{"type":"hello","protocol":1}`, ErrInvalid},
		{"version 1 hello with a user token", `{"type":"hello","protocol":1,"client":"c","user_token":"t"}`, ErrInvalid},
		{"version 1 hello with a policy", `{"type":"hello","protocol":1,"client":"c","policy":"merge"}`, ErrInvalid},
		{"empty push", `{"type":"push","ops":[]}`, ErrInvalid},
		{"oversized", `{"type":"ping","id":"` + strings.Repeat("x", MaxMessageBytes) + `"}`, ErrTooLarge},
		{"too many ops", `{"type":"push","ops":[` + strings.TrimSuffix(strings.Repeat(`{"client":"c","seq":1,"kind":"clear"},`, MaxOpsPerPush+1), ",") + `]}`, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.in))
			var pe *Error
			if !errors.As(err, &pe) || pe.Code != tt.code {
				t.Fatalf("Decode = %v, want code %s", err, tt.code)
			}
			if pe.Retryable {
				t.Fatalf("%s must not be retryable", pe.Code)
			}
		})
	}
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	m, err := Decode([]byte(`{"type":"ping","t":5,"from_the_future":{"x":1}}`))
	if err != nil || m.T != 5 {
		t.Fatalf("Decode = %+v, %v; want ping t=5", m, err)
	}
}

// slowDecode is what encoding/json makes of data.
func slowDecode(t testing.TB, data []byte) (Message, error) {
	t.Helper()
	var m Message
	err := DecodeJSONLimit(data, &m, 1<<30)
	return m, err
}

// FuzzDecode checks that Decode never panics and that whatever it accepts
// encodes and decodes to the same message.
func FuzzDecode(f *testing.F) {
	for _, m := range examples {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte(`{"type":"push","ops":[{"client":"c","seq":1,"kind":"add","sku":"X","quantity":-5}]}`))
	f.Add([]byte(`{"type":"push","ops":[{"client":"c","seq":1,"kind":"add","sku":"Café","options":{"a":"b"},"details":{"price":-1}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fast path reads only what it reads as encoding/json does.
		var fast Message
		if decodeFast(data, &fast) {
			slow, err := slowDecode(t, data)
			if err != nil {
				t.Fatalf("the fast path read what encoding/json refuses (%v): %q", err, data)
			}
			if !reflect.DeepEqual(fast, slow) {
				t.Fatalf("%q:\nfast %+v\nslow %+v", data, fast, slow)
			}
		}
		// DecodeOps reads what encoding/json reads into {"ops": ...}.
		ops, err := DecodeOps(data)
		var req struct {
			Ops []cart.Op `json:"ops"`
		}
		slowErr := DecodeJSON(data, &req)
		if (err == nil) != (slowErr == nil) || (err == nil && !reflect.DeepEqual(ops, req.Ops)) {
			t.Fatalf("DecodeOps(%q) = %+v, %v; encoding/json %+v, %v", data, ops, err, req.Ops, slowErr)
		}
		m, err := Decode(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			return
		}
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("Encode accepted message: %v", err)
		}
		m2, err := Decode(b)
		if err != nil {
			t.Fatalf("re-Decode: %v", err)
		}
		b2, _ := Encode(m2)
		if !bytes.Equal(b, b2) {
			t.Fatalf("not stable:\n%s\n%s", b, b2)
		}
	})
}
