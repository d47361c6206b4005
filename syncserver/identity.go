package syncserver

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	"github.com/cartsync/cartsync/shared/protocol"
)

// Device tokens are issued by the server: 16 bytes, then the first 16
// bytes of their HMAC-SHA256 under the server's secret, base64url encoded.
// A token the server did not issue fails the MAC and is refused. The token
// is a bearer secret that grants its one guest cart; the server never
// stores it, only an id derived from it.
//
// The 16 bytes are random, except in a token issued in place of another
// (a logout after a login merged the guest cart, an expired guest cart,
// POST /v1/devices with the old token): there the first 8 are the first 8
// of the old token's device id, its link, so that the edits the device made
// under the old token still count as its own (cart.Device): a remove, a
// clear or a quantity set to 0 queued before the logout and sent at the
// next login takes away what the device itself had added. The format is
// the same either way, so every version of the server takes every token;
// in a fresh token the link is random, and 64 random bits are no device's.
const (
	deviceRandomBytes = 16
	deviceMACBytes    = 16
	deviceLinkBytes   = 8 // of a token's 16 bytes, the old device's id prefix
	// secretDeviceTokens names the store secret that signs device tokens.
	secretDeviceTokens = "device-token-hmac"
)

// tokens issues and checks device tokens.
type tokens struct{ key []byte }

// issue returns a fresh device token.
func (t tokens) issue() string { return t.issueAfter("") }

// issueAfter returns a fresh device token linked to the device id old (a
// fresh one, not linked, when old is not a device id).
func (t tokens) issueAfter(old string) string {
	b := make([]byte, deviceRandomBytes, deviceRandomBytes+deviceMACBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	if raw, err := hex.DecodeString(old); err == nil && len(raw) == 16 {
		copy(b, raw[:deviceLinkBytes])
	}
	b = append(b, t.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// check verifies tok and returns the device id it stands for and its link:
// the id prefix of the device it follows, if it follows one (16 hex
// digits). A token has exactly one accepted spelling, the one issue wrote:
// base64 leaves unused bits in the last character and skips line breaks,
// so a lax decoder would take many strings for one token, and each would
// name a different device.
func (t tokens) check(tok string) (string, string, *protocol.Error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	if err != nil || len(b) != deviceRandomBytes+deviceMACBytes || base64.RawURLEncoding.EncodeToString(b) != tok {
		return "", "", refusedDevice("malformed device token")
	}
	if !hmac.Equal(b[deviceRandomBytes:], t.mac(b[:deviceRandomBytes])) {
		return "", "", refusedDevice("device token not issued by this server")
	}
	return deviceID(tok), hex.EncodeToString(b[:deviceLinkBytes]), nil
}

// refusedDevice is the unauthorized error of a device token refused: it
// names the device token, so that a client that also sent a user token
// knows which one to give up.
func refusedDevice(msg string) *protocol.Error {
	pe := protocol.Errorf(protocol.ErrUnauthorized, "%s", msg)
	pe.Token = protocol.TokenDevice
	return pe
}

func (t tokens) mac(b []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write(b)
	return m.Sum(nil)[:deviceMACBytes]
}

// deviceID is the stable, non-secret id of a device token.
func deviceID(tok string) string {
	sum := sha256.Sum256([]byte("cartsync-device:" + tok))
	return hex.EncodeToString(sum[:16])
}

// GuestCartID is the id of the guest cart of a device.
func GuestCartID(device string) string { return "g_" + device }

// UserCartID is the id of a user's cart.
func UserCartID(user string) string {
	sum := sha256.Sum256([]byte("cartsync-user:" + user))
	return "u_" + hex.EncodeToString(sum[:16])
}

// cartKind tells a cart's kind from its id.
func cartKind(id string) string {
	if strings.HasPrefix(id, "u_") {
		return KindUser
	}
	return KindGuest
}

// Identity is who a connection or request acts for.
type Identity struct {
	Device string // device id (never the token)
	// Link is the id prefix of the device token this one replaced (16 hex
	// digits; random in a token that replaced none): the device's edits
	// under it count as its own (cart.Device).
	Link   string
	Token  string // the device token, set when newly issued
	User   string // the user id, when a user token was verified
	CartID string // the cart it may read and edit
	// Expires is when the user token's access ends (zero: no end known).
	// Open connections lose access then, as a new hello would.
	Expires time.Time
}
