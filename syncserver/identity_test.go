package syncserver

import (
	"encoding/base64"
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

// TestDeviceTokenLink: a token issued in place of another carries the
// first 8 bytes of the old one's device id, under the MAC, and is in the
// same 43-character form as every token (so servers of every version take
// it); changing the link makes it refused. A fresh token's link is random.
func TestDeviceTokenLink(t *testing.T) {
	tk := tokens{key: []byte("0123456789abcdef0123456789abcdef")}
	first := tk.issue()
	dev1, link1, perr := tk.check(first)
	if perr != nil || len(link1) != 16 || len(first) != 43 {
		t.Fatalf("check(first) = %q, %q, %v (len %d)", dev1, link1, perr, len(first))
	}
	second := tk.issueAfter(dev1)
	dev2, link2, perr := tk.check(second)
	if perr != nil || len(second) != 43 || link2 != dev1[:16] || dev2 == dev1 {
		t.Fatalf("check(second) = %q, %q, %v (len %d); want a new device linked to %q", dev2, link2, perr, len(second), dev1[:16])
	}
	if _, link, _ := tk.check(tk.issueAfter("not a device id")); link == dev1[:16] || len(link) != 16 {
		t.Fatalf("a token after no device: link %q", link)
	}
	b, _ := base64.RawURLEncoding.DecodeString(second)
	b[0] ^= 1 // another link
	if _, _, perr := tk.check(base64.RawURLEncoding.EncodeToString(b)); perr == nil || perr.Code != protocol.ErrUnauthorized || perr.Token != protocol.TokenDevice {
		t.Errorf("a token with its link changed: %v, want unauthorized naming the device token", perr)
	}
}
