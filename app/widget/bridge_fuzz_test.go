package widget

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/syncclient"
)

// The bridge's decoding and origin checks are plain Go (bridge.go has no
// build tags), so these targets fuzz natively; under js/wasm the seeds run
// as ordinary tests in the browser.

// FuzzBridgeRequest decodes arbitrary messages posted by a host page: a
// message is either not a request (and so never answered) or a request
// whose id is a JSON number; the reply to it, success or error, is a bridge
// message echoing that id; a call is either refused with bad_request or
// unknown_method, or has well-formed arguments.
func FuzzBridgeRequest(f *testing.F) {
	for _, s := range []string{
		`{"cartsync":1,"id":1,"method":"add","args":["mug",2,{"name":"Mug","price":1250,"currency":"EUR","image":"https://x/m.png","options":{"size":"L"}}]}`,
		`{"cartsync":1,"id":2,"method":"setQuantity","args":["mug",0,{"size":"L"}]}`,
		`{"cartsync":1,"id":3,"method":"remove","args":["mug"]}`,
		`{"cartsync":1,"id":4,"method":"clear"}`,
		`{"cartsync":1,"id":5,"method":"cart","args":null}`,
		`{"cartsync":1,"id":6,"method":"theme","args":[{"accent":"#f00"}]}`,
		`{"cartsync":1,"id":7,"method":"login","args":["eyJ.eyJ.sig",{"policy":"choose"}]}`,
		`{"cartsync":1,"id":8,"method":"login","args":["t",{"policy":"MERGE"}]}`,
		`{"cartsync":1,"id":9,"method":"logout"}`,
		`{"cartsync":1,"id":1e3,"method":"open"}`,
		`{"cartsync":1.0,"id":-0,"method":"close"}`,
		`{"cartsync":"1","id":1,"method":"cart"}`,
		`{"cartsync":1,"id":"1","method":"cart"}`,
		`{"cartsync":1,"id":1}`,
		`{"cartsync":1,"id":1,"method":"add","args":["mug",1.5]}`,
		`{"cartsync":1,"id":1,"method":"add","args":["mug",99999999999999999999]}`,
		`{"cartsync":1,"id":1,"method":"add","args":["mug",1,{"price":"12"}]}`,
		`{"cartsync":1,"id":1,"method":"add","args":[1,1]}`,
		`{"cartsync":1,"id":1,"method":"__proto__"}`,
		`[]`, `null`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := decodeRequest(data)
		if err != nil {
			if !errors.Is(err, errNotRequest) {
				t.Fatalf("decodeRequest error %v is not errNotRequest", err)
			}
			return
		}
		if !json.Valid([]byte(req.id)) || strings.HasPrefix(string(req.id), `"`) {
			t.Fatalf("request id %q is not a JSON number", req.id)
		}
		c, callErr := parseCall(req)
		var reply []byte
		if callErr != nil {
			code := errorOf(callErr).Code
			if code != codeBadRequest && code != codeUnknownMethod {
				t.Fatalf("parseCall error code %q: %v", code, callErr)
			}
			reply = encodeReply(req.id, nil, callErr)
		} else {
			checkCall(t, c)
			reply = encodeReply(req.id, cartOf(syncclient.State{}), nil)
		}
		var m struct {
			Cartsync json.Number
			ID       json.Number
			Result   json.RawMessage
			Error    *replyError
		}
		dec := json.NewDecoder(bytes.NewReader(reply))
		dec.UseNumber()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("reply %s: %v", reply, err)
		}
		if m.Cartsync != "1" || m.ID != req.id || (m.Error == nil) != (callErr == nil) || (m.Result == nil) != (callErr != nil) {
			t.Fatalf("reply %s to id %s, error %v", reply, req.id, callErr)
		}
	})
}

// checkCall checks a call parseCall accepted.
func checkCall(t *testing.T, c call) {
	t.Helper()
	switch c.method {
	case methodAdd, methodSetQuantity, methodRemove, methodClear, methodCart, methodOpen, methodClose, methodLogout:
	case methodTheme:
		if c.theme == nil {
			t.Fatal("theme call without a theme")
		}
	case methodLogin:
		if c.token == "" || len(c.token) > maxTokenBytes {
			t.Fatalf("login token of %d bytes", len(c.token))
		}
		if c.policy != "" && !c.policy.Valid() {
			t.Fatalf("login policy %q", c.policy)
		}
	default:
		t.Fatalf("accepted unknown method %q", c.method)
	}
}

// FuzzOrigin checks the origin rules over arbitrary allow-lists and page
// fragments: a normalized origin is a bare http(s) origin, lower case,
// without a default port, that normalizes to itself; a fragment is let in
// only for an origin on the allow-list; and each origin on the list is let
// in when the embedding script names it.
func FuzzOrigin(f *testing.F) {
	f.Add("https://shop.example", "#host=https%3A%2F%2Fshop.example")
	f.Add("https://Shop.Example:443, http://localhost:8080", "#host=http://localhost:8080")
	f.Add("https://shop.example", "#host=https%3A%2F%2Fshop.example.evil.example")
	f.Add("https://shop.example", "#host=https%3A%2F%2Fshop.example%40evil.example")
	f.Add("https://user@shop.example,https://shop.example/path,https://shop.example?x,https://shop.example#f", "#host=https://user@shop.example")
	f.Add("http://[::1]:80,https://xn--bcher-kva.example", "#host=http%3A%2F%2F%5B%3A%3A1%5D")
	f.Add("javascript:alert(1),data:,null,*", "#host=null")
	f.Add("https://shop.example:", "#host=https%3A%2F%2Fshop.example%3A&host=https%3A%2F%2Fevil.example")
	f.Add("HTTPS://SHOP.EXAMPLE:0443", "#%zz")
	f.Fuzz(func(t *testing.T, list, hash string) {
		allowed := parseOrigins(list)
		for _, o := range allowed {
			checkOrigin(t, o)
			if host, ok := allowedHost("#host="+url.QueryEscape(o), allowed); !ok || host != o {
				t.Fatalf("allowed origin %q refused: %q, %v", o, host, ok)
			}
		}
		if o, ok := normalizeOrigin(list); ok {
			checkOrigin(t, o)
		}
		host, ok := allowedHost(hash, allowed)
		if !ok {
			if host != "" {
				t.Fatalf("refused fragment %q gave host %q", hash, host)
			}
			return
		}
		in := false
		for _, a := range allowed {
			in = in || a == host
		}
		if !in {
			t.Fatalf("fragment %q let in %q, not on the list %q", hash, host, allowed)
		}
	})
}

// checkOrigin fails unless o is a normalized origin.
func checkOrigin(t *testing.T, o string) {
	t.Helper()
	if again, ok := normalizeOrigin(o); !ok || again != o {
		t.Fatalf("origin %q normalizes to %q, %v", o, again, ok)
	}
	scheme, host, found := strings.Cut(o, "://")
	if !found || (scheme != "http" && scheme != "https") || host == "" {
		t.Fatalf("origin %q is not http(s)://host", o)
	}
	if strings.ContainsAny(host, "/?#@\\ \t\r\n") || host != strings.ToLower(host) {
		t.Fatalf("origin %q has more than a lower-case host and port", o)
	}
	if (scheme == "https" && strings.HasSuffix(host, ":443")) || (scheme == "http" && strings.HasSuffix(host, ":80")) {
		t.Fatalf("origin %q keeps its default port", o)
	}
}
