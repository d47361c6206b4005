package syncserver

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/protocol"
)

// fuzzTokens signs device tokens under a fixed key, so that seeds are the
// same on every run.
var fuzzTokens = tokens{key: []byte("fuzz: device token key, 32 bytes")}

// fuzzToken is the token fuzzTokens would issue for the random part r.
func fuzzToken(r byte) string {
	b := bytes.Repeat([]byte{r}, deviceRandomBytes)
	return base64.RawURLEncoding.EncodeToString(append(b, fuzzTokens.mac(b)...))
}

// FuzzDeviceToken checks that a device token has exactly one accepted
// spelling: any string check accepts is the canonical encoding of what it
// decodes to, maps to the same well-formed device id every time, and no
// other spelling of the same bytes (unused bits of the last character set,
// line breaks, padding) is accepted. Refusals are unauthorized.
func FuzzDeviceToken(f *testing.F) {
	for _, r := range []byte{0, 1, 0xff, 'x'} {
		tok := fuzzToken(r)
		f.Add(tok)
		last := strings.IndexByte(fuzzB64Alphabet, tok[len(tok)-1])
		f.Add(tok[:len(tok)-1] + string(fuzzB64Alphabet[last^1])) // an unused bit set
		f.Add(tok[:10] + "\n" + tok[10:])
		f.Add(tok + "\r\n")
		f.Add(tok + "=")
		f.Add(strings.NewReplacer("-", "+", "_", "/").Replace(tok))
	}
	f.Add("")
	f.Add("not a token")
	f.Fuzz(func(t *testing.T, tok string) {
		dev, link, perr := fuzzTokens.check(tok)
		if perr != nil {
			if perr.Code != protocol.ErrUnauthorized || dev != "" || link != "" {
				t.Fatalf("check(%q) = %q, %q, %v; want unauthorized and no device", tok, dev, link, perr)
			}
			return
		}
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			t.Fatalf("check accepted %q, which does not decode: %v", tok, err)
		}
		if canon := base64.RawURLEncoding.EncodeToString(b); canon != tok {
			t.Fatalf("check accepted %q, not the canonical spelling %q of its bytes", tok, canon)
		}
		if raw, err := hex.DecodeString(dev); err != nil || len(raw) != 16 {
			t.Fatalf("device id %q is not 32 hex digits", dev)
		}
		if raw, err := hex.DecodeString(link); err != nil || len(raw) != deviceLinkBytes {
			t.Fatalf("link %q is not %d hex digits", link, 2*deviceLinkBytes)
		}
		if again, _, _ := fuzzTokens.check(tok); again != dev {
			t.Fatalf("check(%q) gave device %q, then %q", tok, dev, again)
		}
		for _, other := range fuzzRespellings(tok) {
			if d, _, perr := fuzzTokens.check(other); perr == nil {
				t.Fatalf("check accepted %q (device %q) as well as %q (device %q)", other, d, tok, dev)
			}
		}
	})
}

const fuzzB64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// fuzzRespellings returns other strings that a lax base64url decoder reads as
// the bytes of tok.
func fuzzRespellings(tok string) []string {
	var out []string
	// The last character of n bytes holds 8n mod 6 bits of data (32 bytes:
	// 4 bits and 2 unused ones; 48 bytes: all 6 used).
	unusedBits := map[int]int{0: 0, 1: 4, 2: 2}[len(fuzzMustDecode(tok))%3]
	if i := strings.IndexByte(fuzzB64Alphabet, tok[len(tok)-1]); i >= 0 {
		mask := 1<<unusedBits - 1
		for unused := range mask + 1 {
			if j := i&^mask | unused; j != i {
				out = append(out, tok[:len(tok)-1]+string(fuzzB64Alphabet[j]))
			}
		}
	}
	out = append(out,
		"\n"+tok, tok+"\n", tok[:len(tok)/2]+"\r\n"+tok[len(tok)/2:],
		tok+"=", tok+"==",
	)
	if padded := base64.URLEncoding.EncodeToString(fuzzMustDecode(tok)); padded != tok {
		out = append(out, padded)
	}
	return out
}

func fuzzMustDecode(tok string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		panic(err)
	}
	return b
}
