package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cartsync/cartsync/syncserver"
)

const (
	testSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testSecretOld = "an old raw secret of more than 24 bytes"
)

// signedHeader returns the headers of a delivery of body signed with secrets
// at ts.
func signedHeader(t testing.TB, secrets []string, id string, ts time.Time, body []byte) http.Header {
	t.Helper()
	sig, err := Sign(secrets, id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, itoa(ts.Unix()))
	h.Set(HeaderSignature, sig)
	return h
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestSignVerifyRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"evt_1","type":"cart.updated"}`)
	h := signedHeader(t, []string{testSecret}, "evt_1", now, body)
	if got := h.Get(HeaderSignature); !strings.HasPrefix(got, "v1,") || strings.Contains(got, " ") {
		t.Fatalf("signature header %q: want one v1 signature", got)
	}
	for _, at := range []time.Time{now, now.Add(DefaultTolerance), now.Add(-DefaultTolerance)} {
		if err := Verify([]string{testSecret}, h, body, at, 0); err != nil {
			t.Errorf("Verify at %s: %v", at.Sub(now), err)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"id":"evt_1","data":{"qty":1}}`)
	good := signedHeader(t, []string{testSecret}, "evt_1", now, body)
	without := func(name string) http.Header {
		h := good.Clone()
		h.Del(name)
		return h
	}
	with := func(name, v string) http.Header {
		h := good.Clone()
		h.Set(name, v)
		return h
	}
	otherKey := "whsec_" + base64.StdEncoding.EncodeToString([]byte("another key of 24+ bytes!"))
	for _, tc := range []struct {
		name    string
		secrets []string
		header  http.Header
		body    []byte
		now     time.Time
		want    error
	}{
		{"tampered body", nil, good, []byte(`{"id":"evt_1","data":{"qty":9}}`), now, ErrBadSignature},
		{"wrong secret", []string{otherKey}, good, body, now, ErrBadSignature},
		{"other id", nil, with(HeaderID, "evt_2"), body, now, ErrBadSignature},
		{"other timestamp", nil, with(HeaderTimestamp, itoa(now.Unix()+1)), body, now, ErrBadSignature},
		{"v1a only", nil, with(HeaderSignature, "v1a,"+strings.TrimPrefix(good.Get(HeaderSignature), "v1,")), body, now, ErrBadSignature},
		{"not base64", nil, with(HeaderSignature, "v1,!!!"), body, now, ErrBadSignature},
		{"stale", nil, good, body, now.Add(DefaultTolerance + time.Second), ErrStaleTimestamp},
		{"future", nil, good, body, now.Add(-DefaultTolerance - time.Second), ErrStaleTimestamp},
		{"not a number", nil, with(HeaderTimestamp, "yesterday"), body, now, ErrStaleTimestamp},
		{"no id", nil, without(HeaderID), body, now, ErrMissingHeader},
		{"no timestamp", nil, without(HeaderTimestamp), body, now, ErrMissingHeader},
		{"no signature", nil, without(HeaderSignature), body, now, ErrMissingHeader},
		{"no headers", nil, http.Header{}, body, now, ErrMissingHeader},
		{"no secret", []string{}, good, body, now, ErrBadSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secrets := tc.secrets
			if secrets == nil {
				secrets = []string{testSecret}
			}
			err := Verify(secrets, tc.header, tc.body, tc.now, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	// A shorter tolerance applies.
	if err := Verify([]string{testSecret}, good, body, now.Add(2*time.Second), time.Second); !errors.Is(err, ErrStaleTimestamp) {
		t.Errorf("Verify 2 s late with a 1 s tolerance = %v, want ErrStaleTimestamp", err)
	}
}

func TestVerifyRotation(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"type":"cart.created"}`)
	rotating := signedHeader(t, []string{testSecret, testSecretOld}, "evt_r", now, body)
	if n := len(strings.Fields(rotating.Get(HeaderSignature))); n != 2 {
		t.Fatalf("%d signatures while rotating, want 2", n)
	}
	for _, secrets := range [][]string{{testSecret}, {testSecretOld}, {testSecretOld, testSecret}} {
		if err := Verify(secrets, rotating, body, now, 0); err != nil {
			t.Errorf("receiver with %d secret(s): %v", len(secrets), err)
		}
	}
	// A receiver that already has both accepts the sender's old secret alone.
	old := signedHeader(t, []string{testSecretOld}, "evt_r", now, body)
	if err := Verify([]string{testSecret, testSecretOld}, old, body, now, 0); err != nil {
		t.Errorf("old signature, receiver with both: %v", err)
	}
	if err := Verify([]string{testSecret}, old, body, now, 0); !errors.Is(err, ErrBadSignature) {
		t.Errorf("old signature, receiver with the new secret only: %v, want ErrBadSignature", err)
	}
}

// TestKnownVector checks a signature computed by hand, following the
// specification: the key is the base64 after "whsec_", the signed content
// "{id}.{timestamp}.{body}", the signature base64 of its HMAC-SHA256. The
// expected value was also computed with openssl.
func TestKnownVector(t *testing.T) {
	const (
		id   = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts   = 1614265330
		body = `{"test": 2432232314}`
		want = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(testSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id + ".1614265330." + body))
	if byHand := "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil)); byHand != want {
		t.Fatalf("by hand: %s, want %s", byHand, want)
	}
	got, err := Sign([]string{testSecret}, id, time.Unix(ts, 0), []byte(body))
	if err != nil || got != want {
		t.Fatalf("Sign = %q, %v; want %q", got, err, want)
	}
	header := http.Header{}
	header.Set(HeaderID, id)
	header.Set(HeaderTimestamp, "1614265330")
	header.Set(HeaderSignature, want)
	if err := Verify([]string{testSecret}, header, []byte(body), time.Unix(ts+10, 0), 0); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestSecrets(t *testing.T) {
	raw := "a raw secret, 24 bytes.."
	if _, err := Sign([]string{raw}, "evt", time.Now(), nil); err != nil {
		t.Errorf("raw secret of %d bytes: %v", len(raw), err)
	}
	unpadded := "whsec_" + base64.RawStdEncoding.EncodeToString([]byte("twenty-five bytes of key!"))
	if _, err := Sign([]string{unpadded}, "evt", time.Now(), nil); err != nil {
		t.Errorf("whsec_ without padding: %v", err)
	}
	for _, bad := range []string{
		"too short a raw secret",
		"whsec_" + base64.StdEncoding.EncodeToString([]byte("short key")),
		"whsec_not*base64*at*all*but*long*enough",
	} {
		_, err := Sign([]string{testSecret, bad}, "evt", time.Now(), nil)
		if !errors.Is(err, ErrBadSecret) {
			t.Errorf("secret %q: %v, want ErrBadSecret", bad, err)
			continue
		}
		if strings.Contains(err.Error(), strings.TrimPrefix(bad, "whsec_")) {
			t.Errorf("error %q quotes the secret", err)
		}
	}
}

func TestBody(t *testing.T) {
	at := time.Date(2026, 1, 2, 15, 4, 5, 123_000_000, time.FixedZone("x", 3600))
	ev := syncserver.Event{Seq: 7, ID: "evt_b", Type: syncserver.EventCartUpdated, CartID: "cart_1", At: at,
		Data: json.RawMessage(`{"cart_id": "cart_1", "lines": [1, 2]}`), State: syncserver.EventPending, Attempts: 2}
	b, err := Body(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"evt_b","type":"cart.updated","timestamp":"2026-01-02T14:04:05.123Z","cart_id":"cart_1","data":{"cart_id":"cart_1","lines":[1,2]}}`
	if string(b) != want {
		t.Fatalf("body\n%s\nwant\n%s", b, want)
	}
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.ID != ev.ID || p.Type != ev.Type || p.CartID != ev.CartID || !p.Timestamp.Equal(at) {
		t.Errorf("decoded %+v", p)
	}
	var data, wantData any
	json.Unmarshal(p.Data, &data)
	json.Unmarshal(ev.Data, &wantData)
	if !reflect.DeepEqual(data, wantData) {
		t.Errorf("data %s, want %s", p.Data, ev.Data)
	}

	ev.Data = nil
	if b, err := Body(ev); err != nil || !strings.HasSuffix(string(b), `"data":{}}`) {
		t.Errorf("no data: %s, %v; want data {}", b, err)
	}
	ev.Data = json.RawMessage(`{"broken":`)
	if _, err := Body(ev); err == nil {
		t.Error("invalid data: no error")
	}
}
