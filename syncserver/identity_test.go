package syncserver

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/protocol"
)

// TestDeviceTokenOneSpelling: a token is accepted only as issued. Other
// spellings that decode to the same bytes (the unused low bits of the last
// character set, line breaks that base64 decoders skip) are refused rather
// than each opening a new guest cart.
func TestDeviceTokenOneSpelling(t *testing.T) {
	tk := tokens{key: []byte("0123456789abcdef0123456789abcdef")}
	tok := tk.issue()
	dev, _, perr := tk.check(tok)
	if perr != nil {
		t.Fatalf("check(issued token): %v", perr)
	}
	if dev != deviceID(tok) {
		t.Fatalf("device = %q, want %q", dev, deviceID(tok))
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, tok[len(tok)-1])
	var variants []string
	// 32 bytes are 43 characters; the last one carries 2 bits of data and
	// 4 unused bits.
	for low := 1; low < 16; low++ {
		variants = append(variants, tok[:len(tok)-1]+string(alphabet[last^low]))
	}
	variants = append(variants,
		tok[:10]+"\n"+tok[10:],
		tok[:10]+"\r\n"+tok[10:],
		tok+"\n",
		tok+"=",
		" "+tok,
	)
	for _, v := range variants {
		if _, _, perr := tk.check(v); perr == nil || perr.Code != protocol.ErrUnauthorized {
			t.Errorf("check(%q) = %v, want unauthorized", v, perr)
		}
	}
}

// TestDeviceTokenLineage: a token issued in place of another names the
// devices before it, newest first and at most maxEarlierDevices of them,
// under the MAC: changing or cutting them makes the token refused.
func TestDeviceTokenLineage(t *testing.T) {
	tk := tokens{key: []byte("0123456789abcdef0123456789abcdef")}
	first := tk.issue()
	dev1, earlier, perr := tk.check(first)
	if perr != nil || len(earlier) != 0 || len(first) != 43 {
		t.Fatalf("check(first) = %q, %q, %v (len %d); want no earlier devices, 43 characters", dev1, earlier, perr, len(first))
	}
	chain := []string{dev1}
	tok := first
	for i := 0; i < maxEarlierDevices+2; i++ {
		tok = tk.issueAfter(chain)
		dev, earlier, perr := tk.check(tok)
		if perr != nil {
			t.Fatalf("check(token %d): %v", i, perr)
		}
		want := chain[:min(len(chain), maxEarlierDevices)]
		if !slices.Equal(earlier, want) {
			t.Fatalf("token %d: earlier = %q, want %q", i, earlier, want)
		}
		if dev != deviceID(tok) {
			t.Fatalf("token %d: device = %q, want %q", i, dev, deviceID(tok))
		}
		chain = append([]string{dev}, chain...)
	}
	if len(tok) > 107 {
		t.Fatalf("a token with %d earlier devices is %d characters", maxEarlierDevices, len(tok))
	}
	// Not a device id: left out rather than signed.
	if _, earlier, _ := tk.check(tk.issueAfter([]string{"nope", dev1})); !slices.Equal(earlier, []string{dev1}) {
		t.Fatalf("earlier = %q, want only %q", earlier, dev1)
	}
	b, _ := base64.RawURLEncoding.DecodeString(tok)
	forged := slices.Clone(b)
	forged[deviceRandomBytes] ^= 1 // another earlier device
	cut := append(slices.Clone(b[:deviceRandomBytes]), b[len(b)-deviceMACBytes:]...)
	long := append(slices.Clone(b[:len(b)-deviceMACBytes]), make([]byte, deviceIDBytes)...)
	long = append(long, tk.mac(long)...) // signed, but one earlier device too many
	for name, v := range map[string][]byte{"forged": forged, "cut": cut, "too long": long, "odd": b[:len(b)-1]} {
		if _, _, perr := tk.check(base64.RawURLEncoding.EncodeToString(v)); perr == nil || perr.Code != protocol.ErrUnauthorized {
			t.Errorf("%s token: %v, want unauthorized", name, perr)
		}
	}
}
