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

// Device tokens are issued by the server: 16 random bytes, then the ids of
// up to three tokens the device held before (16 bytes each, newest first),
// then the first 16 bytes of the HMAC-SHA256 of all that under the server's
// secret, base64url encoded. A token the server did not issue fails the MAC
// and is refused. The token is a bearer secret that grants its one guest
// cart; the server never stores it, only an id derived from it.
//
// The earlier ids are the device's lineage: a token issued in place of
// another (a logout after a login merged the guest cart, an expired guest
// cart, POST /v1/devices with the old token) names the old one, so that
// the edits the device made under it still count as its own. A remove,
// a clear or a quantity set to 0 queued before the logout and sent at the
// next login then takes away what the device itself had added, as it
// would have under the old token (cart.Device).
const (
	deviceRandomBytes = 16
	deviceMACBytes    = 16
	deviceIDBytes     = 16 // an earlier device id in a token
	// maxEarlierDevices is how many earlier device ids a token carries.
	maxEarlierDevices = 3
	// secretDeviceTokens names the store secret that signs device tokens.
	secretDeviceTokens = "device-token-hmac"
)

// tokens issues and checks device tokens.
type tokens struct{ key []byte }

// issue returns a fresh device token with no earlier devices.
func (t tokens) issue() string { return t.issueAfter(nil) }

// issueAfter returns a fresh device token whose earlier devices are
// earlier (device ids, newest first; those past maxEarlierDevices and any
// that are not device ids are left out).
func (t tokens) issueAfter(earlier []string) string {
	b := make([]byte, deviceRandomBytes, deviceRandomBytes+maxEarlierDevices*deviceIDBytes+deviceMACBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	n := 0
	for _, dev := range earlier {
		raw, err := hex.DecodeString(dev)
		if err != nil || len(raw) != deviceIDBytes || n == maxEarlierDevices {
			continue
		}
		b = append(b, raw...)
		n++
	}
	b = append(b, t.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// check verifies tok and returns the device id it stands for and the ids
// of the devices it follows (newest first). A token has exactly one
// accepted spelling, the one issue wrote: base64 leaves unused bits in the
// last character and skips line breaks, so a lax decoder would take many
// strings for one token, and each would name a different device.
func (t tokens) check(tok string) (string, []string, *protocol.Error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(tok)
	body := len(b) - deviceMACBytes - deviceRandomBytes
	if err != nil || body < 0 || body%deviceIDBytes != 0 || body/deviceIDBytes > maxEarlierDevices ||
		base64.RawURLEncoding.EncodeToString(b) != tok {
		return "", nil, refusedDevice("malformed device token")
	}
	signed := b[:len(b)-deviceMACBytes]
	if !hmac.Equal(b[len(signed):], t.mac(signed)) {
		return "", nil, refusedDevice("device token not issued by this server")
	}
	var earlier []string
	for rest := signed[deviceRandomBytes:]; len(rest) > 0; rest = rest[deviceIDBytes:] {
		earlier = append(earlier, hex.EncodeToString(rest[:deviceIDBytes]))
	}
	return deviceID(tok), earlier, nil
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
	// Earlier are the ids of the device tokens this device held before
	// (newest first, at most maxEarlierDevices): its edits under them
	// count as its own (cart.Device).
	Earlier []string
	Token   string // the device token, set when newly issued
	User    string // the user id, when a user token was verified
	CartID  string // the cart it may read and edit
	// Expires is when the user token's access ends (zero: no end known).
	// Open connections lose access then, as a new hello would.
	Expires time.Time
}
