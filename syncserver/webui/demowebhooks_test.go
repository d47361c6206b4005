package webui

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A test secret and another, in the Standard Webhooks form.
var (
	testSecret  = "whsec_" + base64.StdEncoding.EncodeToString([]byte("the demo's webhook key, 32 bytes"))
	otherSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("somebody else's key of 32 bytes!"))
)

const testEvent = `{"id":"evt_1","type":"checkout.completed","timestamp":"2026-01-02T15:04:05Z","cart_id":"` + testCart + `","data":{"items":3}}`

// signed returns a delivery of body signed by hand as Standard Webhooks
// says: HMAC-SHA256, keyed with the secret's key, of "id.timestamp.body".
func signed(tb testing.TB, secret, id string, ts time.Time, body string) *http.Request {
	tb.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		tb.Fatal(err)
	}
	unix := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, unix, body)
	req := httptest.NewRequest("POST", "/demo/webhooks", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", unix)
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return req
}

func deliver(h http.Handler, req *http.Request) int {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// received lists the deliveries h kept.
func received(tb testing.TB, h http.Handler) webhookList {
	tb.Helper()
	code, body := call(tb, h, "GET", "/demo/webhooks.json", "")
	var list webhookList
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != http.StatusOK {
		tb.Fatalf("webhooks.json = %d %s", code, body)
	}
	return list
}

func TestWebhookReceiverAcceptsASignedEvent(t *testing.T) {
	h := newTestDemo(t, nil, testSecret)
	if code := deliver(h, signed(t, testSecret, "evt_1", time.Now(), testEvent)); code != http.StatusNoContent {
		t.Fatalf("signed delivery = %d, want 204", code)
	}
	list := received(t, h)
	if !list.Verifying || len(list.Events) != 1 {
		t.Fatalf("listed %+v, want one event, verifying", list)
	}
	ev := list.Events[0]
	if !ev.Verified || ev.ID != "evt_1" || ev.Type != "checkout.completed" || ev.CartID != testCart || string(ev.Data) != `{"items":3}` {
		t.Errorf("kept %+v, want the verified checkout.completed of the test cart with its data", ev)
	}
	if ev.Timestamp.IsZero() || ev.ReceivedAt.IsZero() {
		t.Errorf("kept %+v without its times", ev)
	}
}

func TestWebhookReceiverRefusesBadSignatures(t *testing.T) {
	now := time.Now()
	tampered := signed(t, testSecret, "evt_1", now, testEvent)
	tampered.Body = http.NoBody
	unsigned := signed(t, testSecret, "evt_1", now, testEvent)
	unsigned.Header.Del("webhook-signature")
	for _, tc := range []struct {
		name    string
		secret  string
		req     *http.Request
		wantErr string
	}{
		{"another secret", testSecret, signed(t, otherSecret, "evt_1", now, testEvent), "does not match"},
		{"another id", testSecret, func() *http.Request {
			r := signed(t, testSecret, "evt_1", now, testEvent)
			r.Header.Set("webhook-id", "evt_2")
			return r
		}(), "does not match"},
		{"body changed", testSecret, tampered, "does not match"},
		{"no signature", testSecret, unsigned, "missing"},
		{"an hour old", testSecret, signed(t, testSecret, "evt_1", now.Add(-time.Hour), testEvent), "too far"},
		{"no secret configured", "", signed(t, testSecret, "evt_1", now, testEvent), "no valid webhook secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestDemo(t, nil, tc.secret)
			if code := deliver(h, tc.req); code != http.StatusUnauthorized {
				t.Errorf("delivery = %d, want 401", code)
			}
			list := received(t, h)
			if len(list.Events) != 1 {
				t.Fatalf("listed %d events, want the refused one", len(list.Events))
			}
			ev := list.Events[0]
			if ev.Verified || !strings.Contains(ev.Error, tc.wantErr) || ev.Data != nil {
				t.Errorf("kept %+v, want not verified (%q) and no data", ev, tc.wantErr)
			}
		})
	}
}

func TestWebhookReceiverMarksRedeliveries(t *testing.T) {
	h := newTestDemo(t, nil, testSecret)
	for range 2 {
		if code := deliver(h, signed(t, testSecret, "evt_1", time.Now(), testEvent)); code != http.StatusNoContent {
			t.Fatalf("delivery = %d", code)
		}
	}
	list := received(t, h)
	if len(list.Events) != 2 || !list.Events[0].Duplicate || list.Events[1].Duplicate {
		t.Errorf("listed %+v, want the second delivery (first listed) marked duplicate", list.Events)
	}
}

func TestWebhookReceiverKeepsTheLast200(t *testing.T) {
	h := newTestDemo(t, nil, testSecret)
	for i := range maxWebhooks + 5 {
		id := fmt.Sprintf("evt_%d", i)
		body := strings.Replace(testEvent, "evt_1", id, 1)
		if code := deliver(h, signed(t, testSecret, id, time.Now(), body)); code != http.StatusNoContent {
			t.Fatalf("delivery %d = %d", i, code)
		}
	}
	list := received(t, h)
	if len(list.Events) != maxWebhooks {
		t.Fatalf("kept %d, want %d", len(list.Events), maxWebhooks)
	}
	if first, last := list.Events[0].ID, list.Events[maxWebhooks-1].ID; first != "evt_204" || last != "evt_5" {
		t.Errorf("kept %s down to %s, want evt_204 down to evt_5", first, last)
	}
}

func TestWebhookReceiverClipsWhatItCannotTrust(t *testing.T) {
	h := newTestDemo(t, nil, testSecret)
	long := strings.Repeat("x", 10_000)
	body := `{"id":"evt_1","type":"` + long + `","cart_id":"` + long + `","data":{"big":"` + long + `"}}`
	if code := deliver(h, signed(t, otherSecret, long, time.Now(), body)); code != http.StatusUnauthorized {
		t.Fatalf("delivery = %d, want 401", code)
	}
	ev := received(t, h).Events[0]
	if len(ev.ID) > maxUnverifiedText || len(ev.Type) > maxUnverifiedText || len(ev.CartID) > maxUnverifiedText || ev.Data != nil {
		t.Errorf("kept %d, %d, %d bytes and data %d bytes of an unverified delivery", len(ev.ID), len(ev.Type), len(ev.CartID), len(ev.Data))
	}
}
