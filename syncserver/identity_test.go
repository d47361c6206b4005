package syncserver

import (
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
	dev, perr := tk.check(tok)
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
		if _, perr := tk.check(v); perr == nil || perr.Code != protocol.ErrUnauthorized {
			t.Errorf("check(%q) = %v, want unauthorized", v, perr)
		}
	}
}
