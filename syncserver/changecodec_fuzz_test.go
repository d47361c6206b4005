package syncserver_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/syncserver"
)

// FuzzChangeCodec decodes arbitrary stored op and warnings JSON as a store
// reads it back: DecodeChange never panics, and whatever it accepts encodes
// and decodes again to the same change (warnings stored as NULL when there
// are none). A change the server would log (its op passes the cart's
// validation) round-trips exactly.
func FuzzChangeCodec(f *testing.F) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 5, time.UTC).UnixNano()
	for _, s := range []struct{ op, warnings string }{
		{`{"client":"c1","seq":1,"kind":"add","sku":"mug","options":{"size":"l"},"quantity":2,"details":{"name":"Mug","price":250,"currency":"EUR"},"base":0}`, ""},
		{`{"client":"c1","seq":2,"kind":"add","sku":"mug","quantity":999,"base":1}`, `[{"code":"quantity_clamped","message":"quantity limited"}]`},
		{`{"client":"c2","seq":7,"kind":"clear","base":3,"cart":"u_0123"}`, "null"},
		{`{"client":"c2","seq":7,"kind":"merge","base":3}`, `[]`},
		{`{"client":"c\u00e9","seq":18446744073709551615,"kind":"remove","sku":"caf\u00e9","options":{},"base":0}`, ""},
		{`{"seq":-1}`, ""},
		{`{"quantity":1e400}`, `[{"code":5}]`},
		{`null`, `{}`},
		{``, ``},
	} {
		var w []byte
		if s.warnings != "" {
			w = []byte(s.warnings)
		}
		f.Add(uint64(3), []byte(s.op), w, at)
	}
	f.Fuzz(func(t *testing.T, version uint64, op, warnings []byte, atNanos int64) {
		at := time.Unix(0, atNanos).In(time.FixedZone("x", 3600))
		if len(warnings) == 0 {
			warnings = nil // a NULL column
		}
		ch, err := syncserver.DecodeChange(version, op, warnings, at)
		if err != nil {
			return
		}
		if ch.Version != version || !ch.At.Equal(at) || ch.At.Location() != time.UTC {
			t.Fatalf("decoded version %d at %v, want %d at %v in UTC", ch.Version, ch.At, version, at)
		}
		op2, w2, err := syncserver.EncodeChange(ch)
		if err != nil {
			t.Fatalf("encode %+v: %v", ch, err)
		}
		if (w2 == nil) != (len(ch.Warnings) == 0) {
			t.Fatalf("warnings %v encoded as %q", ch.Warnings, w2)
		}
		ch2, err := syncserver.DecodeChange(version, op2, w2, at)
		if err != nil {
			t.Fatalf("decode what EncodeChange gave (%s, %s): %v", op2, w2, err)
		}
		if a, b := changeJSON(t, ch), changeJSON(t, ch2); !bytes.Equal(a, b) {
			t.Fatalf("not stable:\n%s\n%s", a, b)
		}
		// What the server logs comes back as it went in, value for
		// value (an empty options map being none).
		if ch.Op.Validate(cart.DefaultLimits) == nil {
			want, got := ch, ch2
			for _, c := range []*syncserver.Change{&want, &got} {
				if len(c.Op.Options) == 0 {
					c.Op.Options = nil
				}
				if len(c.Warnings) == 0 {
					c.Warnings = nil
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("valid change does not round-trip:\n%+v\n%+v", want, got)
			}
		}
	})
}

// changeJSON is a change's op and warnings as JSON, an empty list or map
// being the same as none.
func changeJSON(t testing.TB, ch syncserver.Change) []byte {
	t.Helper()
	if len(ch.Warnings) == 0 {
		ch.Warnings = nil
	}
	b, err := json.Marshal(struct {
		Version  uint64
		Op       cart.Op
		Warnings []cart.Warning
	}{ch.Version, ch.Op, ch.Warnings})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
