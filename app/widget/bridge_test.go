package widget

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
)

func TestParseOrigins(t *testing.T) {
	got := parseOrigins(" https://shop.example , http://localhost:8080,HTTPS://Shop.Example:443,https://x.example/path,ftp://x.example,,*,http://:80,https://:443,https://a.example/")
	want := []string{"https://shop.example", "http://localhost:8080", "https://shop.example", "https://a.example"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseOrigins = %q, want %q", got, want)
	}
	if got := parseOrigins(""); got != nil {
		t.Errorf("parseOrigins(\"\") = %q, want none", got)
	}
}

func TestAllowedHost(t *testing.T) {
	allowed := parseOrigins("https://shop.example, http://localhost:8080, https://*.stores.example")
	tests := []struct {
		hash string
		want string // "" for refused
	}{
		{"#host=https%3A%2F%2Fshop.example", "https://shop.example"},
		{"#host=https://shop.example", "https://shop.example"},
		{"#host=http%3A%2F%2Flocalhost%3A8080", "http://localhost:8080"},
		{"#host=https%3A%2F%2Fevil.example", ""},
		{"#host=https%3A%2F%2Fshop.example.evil.example", ""},
		{"#host=https%3A%2F%2Fshop.example%2Fpath", ""},
		{"#host=http%3A%2F%2Fshop.example", ""}, // another scheme, another origin
		{"#other=1", ""},
		{"", ""},
		{"#host=null", ""},
		// A leading "*." allows subdomains, as the server does for the
		// websocket and the framing: same scheme and port.
		{"#host=https%3A%2F%2Fa.stores.example", "https://a.stores.example"},
		{"#host=https%3A%2F%2Fb.a.stores.example", "https://b.a.stores.example"},
		{"#host=https%3A%2F%2Fstores.example", ""},
		{"#host=http%3A%2F%2Fa.stores.example", ""},
		{"#host=https%3A%2F%2Fa.stores.example%3A8443", ""},
		{"#host=https%3A%2F%2Fevilstores.example", ""},
	}
	for _, tt := range tests {
		got, ok := allowedHost(tt.hash, allowed)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("allowedHost(%q) = %q, %v; want %q", tt.hash, got, ok, tt.want)
		}
	}
}

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		id      string
		method  string
		notReq  bool
		nargs   int
		callErr string // code of parseCall's error
		check   func(t *testing.T, c call)
	}{
		{
			name: "add", in: `{"cartsync":1,"id":7,"method":"add","args":["TEE-01",2,{"name":"T-shirt","price":1999,"currency":"EUR","image":"/t.png","options":{"size":"M"}}]}`,
			id: "7", method: "add", nargs: 3,
			check: func(t *testing.T, c call) {
				want := call{method: "add", sku: "TEE-01", qty: 2, opts: map[string]string{"size": "M"},
					details: &cart.Details{Name: "T-shirt", Price: 1999, Currency: "EUR", Image: "/t.png"}}
				if !reflect.DeepEqual(c, want) {
					t.Errorf("call = %+v, want %+v", c, want)
				}
			},
		},
		{
			name: "add without details", in: `{"cartsync":1,"id":1,"method":"add","args":["TEE",1]}`, id: "1", method: "add", nargs: 2,
			check: func(t *testing.T, c call) {
				if c.details != nil || c.opts != nil || c.qty != 1 {
					t.Errorf("call = %+v", c)
				}
			},
		},
		{
			name: "setQuantity", in: `{"cartsync":1,"id":2,"method":"setQuantity","args":["TEE",0,{"size":"M"}]}`, id: "2", method: "setQuantity", nargs: 3,
			check: func(t *testing.T, c call) {
				if c.sku != "TEE" || c.qty != 0 || c.opts["size"] != "M" {
					t.Errorf("call = %+v", c)
				}
			},
		},
		{name: "remove", in: `{"cartsync":1,"id":3,"method":"remove","args":["TEE",null]}`, id: "3", method: "remove", nargs: 2},
		{name: "clear", in: `{"cartsync":1,"id":4,"method":"clear","args":[]}`, id: "4", method: "clear"},
		{name: "cart without args", in: `{"cartsync":1,"id":5,"method":"cart"}`, id: "5", method: "cart"},
		{
			name: "theme", in: `{"cartsync":1,"id":6,"method":"theme","args":[{"accent":"#fff"}]}`, id: "6", method: "theme", nargs: 1,
			check: func(t *testing.T, c call) {
				if c.theme.props[themeVars["accent"].prop] != "#fff" {
					t.Errorf("theme = %v", c.theme)
				}
			},
		},
		{name: "big id", in: `{"cartsync":1,"id":9007199254740991,"method":"cart","args":[]}`, id: "9007199254740991", method: "cart"},
		{name: "fractional quantity", in: `{"cartsync":1,"id":8,"method":"add","args":["TEE",1.5]}`, id: "8", method: "add", nargs: 2, callErr: codeBadRequest},
		{name: "quantity as string", in: `{"cartsync":1,"id":8,"method":"add","args":["TEE","2"]}`, id: "8", method: "add", nargs: 2, callErr: codeBadRequest},
		{name: "missing sku", in: `{"cartsync":1,"id":8,"method":"remove","args":[]}`, id: "8", method: "remove", callErr: codeBadRequest},
		{name: "sku not a string", in: `{"cartsync":1,"id":8,"method":"remove","args":[12]}`, id: "8", method: "remove", nargs: 1, callErr: codeBadRequest},
		{name: "options not strings", in: `{"cartsync":1,"id":8,"method":"remove","args":["TEE",{"size":1}]}`, id: "8", method: "remove", nargs: 2, callErr: codeBadRequest},
		{name: "price as string", in: `{"cartsync":1,"id":8,"method":"add","args":["TEE",1,{"price":"1999"}]}`, id: "8", method: "add", nargs: 3, callErr: codeBadRequest},
		{name: "fractional price", in: `{"cartsync":1,"id":8,"method":"add","args":["TEE",1,{"price":19.99}]}`, id: "8", method: "add", nargs: 3, callErr: codeBadRequest},
		{name: "theme not strings", in: `{"cartsync":1,"id":8,"method":"theme","args":[{"accent":1}]}`, id: "8", method: "theme", nargs: 1, callErr: codeBadRequest},
		{
			name: "login", in: `{"cartsync":1,"id":9,"method":"login","args":["tok",{"policy":"choose"}]}`, id: "9", method: "login", nargs: 2,
			check: func(t *testing.T, c call) {
				if c.token != "tok" || c.policy != cart.PolicyChoose {
					t.Errorf("call = %+v", c)
				}
			},
		},
		{
			name: "login without a policy", in: `{"cartsync":1,"id":9,"method":"login","args":["tok",{}]}`, id: "9", method: "login", nargs: 2,
			check: func(t *testing.T, c call) {
				if c.token != "tok" || c.policy != "" {
					t.Errorf("call = %+v", c)
				}
			},
		},
		{name: "login without options", in: `{"cartsync":1,"id":9,"method":"login","args":["tok"]}`, id: "9", method: "login", nargs: 1},
		{name: "login with a null policy", in: `{"cartsync":1,"id":9,"method":"login","args":["tok",{"policy":null}]}`, id: "9", method: "login", nargs: 2},
		{name: "login without a token", in: `{"cartsync":1,"id":9,"method":"login","args":[]}`, id: "9", method: "login", callErr: codeBadRequest},
		{name: "login with an empty token", in: `{"cartsync":1,"id":9,"method":"login","args":["",{}]}`, id: "9", method: "login", nargs: 2, callErr: codeBadRequest},
		{name: "login with a token too long", in: `{"cartsync":1,"id":9,"method":"login","args":["` + strings.Repeat("x", maxTokenBytes+1) + `"]}`, id: "9", method: "login", nargs: 1, callErr: codeBadRequest},
		{name: "login with a number token", in: `{"cartsync":1,"id":9,"method":"login","args":[42]}`, id: "9", method: "login", nargs: 1, callErr: codeBadRequest},
		{name: "login with an unknown policy", in: `{"cartsync":1,"id":9,"method":"login","args":["tok",{"policy":"steal"}]}`, id: "9", method: "login", nargs: 2, callErr: codeBadRequest},
		{name: "login with a policy not a string", in: `{"cartsync":1,"id":9,"method":"login","args":["tok",{"policy":1}]}`, id: "9", method: "login", nargs: 2, callErr: codeBadRequest},
		{name: "login with options not an object", in: `{"cartsync":1,"id":9,"method":"login","args":["tok","merge"]}`, id: "9", method: "login", nargs: 2, callErr: codeBadRequest},
		{name: "logout", in: `{"cartsync":1,"id":9,"method":"logout","args":[]}`, id: "9", method: "logout"},
		{name: "unknown", in: `{"cartsync":1,"id":10,"method":"explode","args":[]}`, id: "10", method: "explode", callErr: codeUnknownMethod},
		{name: "other version", in: `{"cartsync":2,"id":1,"method":"cart"}`, notReq: true},
		{name: "no id", in: `{"cartsync":1,"method":"cart"}`, notReq: true},
		{name: "string id", in: `{"cartsync":1,"id":"1","method":"cart"}`, notReq: true},
		{name: "event", in: `{"cartsync":1,"event":"ready","data":{}}`, notReq: true},
		{name: "not JSON", in: `{`, notReq: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := decodeRequest([]byte(tt.in))
			if tt.notReq {
				if !errors.Is(err, errNotRequest) {
					t.Fatalf("decodeRequest = %+v, %v; want errNotRequest", r, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decodeRequest: %v", err)
			}
			if string(r.id) != tt.id || r.method != tt.method || len(r.args) != tt.nargs {
				t.Errorf("request = id %s, method %s, %d args; want %s, %s, %d", r.id, r.method, len(r.args), tt.id, tt.method, tt.nargs)
			}
			c, err := parseCall(r)
			if tt.callErr != "" {
				if err == nil || errorOf(err).Code != tt.callErr {
					t.Fatalf("parseCall error = %v, want code %s", err, tt.callErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseCall: %v", err)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
}

func TestEncodeReply(t *testing.T) {
	tests := []struct {
		name   string
		result any
		err    error
		want   string
	}{
		{"true", true, nil, `{"cartsync":1,"id":7,"result":true}`},
		{"cart error", nil, &cart.Error{Code: cart.CodeInvalidQuantity, Message: "add quantity must be 1 to 999, got 0"},
			`{"cartsync":1,"id":7,"error":{"code":"invalid_quantity","message":"add quantity must be 1 to 999, got 0"}}`},
		{"wrapped cart error", nil, errorsJoin(&cart.Error{Code: cart.CodeInvalidSKU, Message: "m"}),
			`{"cartsync":1,"id":7,"error":{"code":"invalid_sku","message":"m"}}`},
		{"bad request", nil, badRequest("argument 1 (sku) must be a string"),
			`{"cartsync":1,"id":7,"error":{"code":"bad_request","message":"argument 1 (sku) must be a string"}}`},
		{"other", true, errors.New("disk full"), `{"cartsync":1,"id":7,"error":{"code":"internal","message":"disk full"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(encodeReply("7", tt.result, tt.err)); got != tt.want {
				t.Errorf("encodeReply =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func errorsJoin(err error) error { return errors.Join(errors.New("queue add"), err) }

func TestCartShape(t *testing.T) {
	st := testState(syncclient.Offline, 2,
		testLine("TEE", "T-shirt", 2, 1999, "EUR", map[string]string{"size": "M"}),
		testLine("PIN", "", 1, 0, "", nil),
	)
	st.Cart.Lines[0].Details.Image = "https://shop.example/t.png"
	got := string(encodeEvent(eventChange, cartOf(st)))
	want := `{"cartsync":1,"event":"change","data":{"id":"cart-1","lines":[` +
		`{"key":"TEE?size=M","sku":"TEE","options":{"size":"M"},"quantity":2,"details":{"name":"T-shirt","image":"https://shop.example/t.png","price":1999,"currency":"EUR"}},` +
		`{"key":"PIN","sku":"PIN","options":{},"quantity":1,"details":{"name":"","image":"","price":0,"currency":""}}],` +
		`"items":3,"version":7,"synced":false,"pending":2,"status":"offline"}}`
	if got != want {
		t.Errorf("change event =\n%s\nwant\n%s", got, want)
	}
	empty := string(mustJSON(cartOf(syncclient.State{})))
	if want := `{"id":"","lines":[],"items":0,"version":0,"synced":true,"pending":0,"status":"offline"}`; empty != want {
		t.Errorf("empty cart = %s, want %s", empty, want)
	}
}

func eventNames(t *testing.T, msgs [][]byte) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		var e struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal(m, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Event)
	}
	return out
}

func TestAnnouncer(t *testing.T) {
	var a announcer
	tee := testLine("TEE", "T-shirt", 1, 1999, "EUR", nil)
	st := testState(syncclient.Offline, 0)

	if got := a.stateEvents(st); got != nil {
		t.Errorf("events before ready: %s", got)
	}
	if got := a.resizeEvent(sizeData{Width: 64, Height: 64}); got != nil {
		t.Errorf("resize before ready: %s", got)
	}
	if got := string(a.readyEvent(st)); !strings.Contains(got, `"event":"ready"`) {
		t.Errorf("ready = %s", got)
	}
	if got := a.readyEvent(st); got != nil {
		t.Errorf("second ready: %s", got)
	}

	steps := []struct {
		name string
		st   syncclient.State
		want []string
	}{
		{"same", testState(syncclient.Offline, 0), nil},
		{"connecting", testState(syncclient.Connecting, 0), []string{"sync"}},
		{"local edit", testState(syncclient.Connecting, 1, tee), []string{"change", "sync"}},
		{"syncing", testState(syncclient.Syncing, 1, tee), []string{"sync"}},
		{"confirmed at a new version", func() syncclient.State {
			s := testState(syncclient.Synced, 0, tee)
			s.Confirmed = 8
			return s
		}(), []string{"change", "sync"}},
		{"nothing new", func() syncclient.State {
			s := testState(syncclient.Synced, 0, tee)
			s.Confirmed = 8
			return s
		}(), nil},
		{"a new cart at the same version", func() syncclient.State {
			s := testState(syncclient.Synced, 0, tee)
			s.Confirmed = 8
			s.Cart.ID = "cart-2"
			return s
		}(), []string{"change"}},
		{"the cart expired, handed over empty", func() syncclient.State {
			s := testState(syncclient.Offline, 0)
			s.CartExpired = true
			return s
		}(), []string{"expired", "change", "sync"}},
		{"the new cart, the notice still up", func() syncclient.State {
			s := testState(syncclient.Synced, 0)
			s.CartExpired = true
			s.Cart.ID, s.Confirmed = "cart-3", 1
			return s
		}(), []string{"change", "sync"}},
		{"the notice acknowledged", func() syncclient.State {
			s := testState(syncclient.Synced, 0)
			s.Cart.ID, s.Confirmed = "cart-3", 1
			return s
		}(), nil},
		{"expired again", func() syncclient.State {
			s := testState(syncclient.Synced, 0)
			s.CartExpired = true
			s.Cart.ID, s.Confirmed = "cart-3", 1
			return s
		}(), []string{"expired"}},
	}
	for _, s := range steps {
		if got := eventNames(t, a.stateEvents(s.st)); !reflect.DeepEqual(got, s.want) {
			t.Errorf("%s: events %q, want %q", s.name, got, s.want)
		}
	}

	closed := sizeData{Width: 64, Height: 64}
	if got := string(a.resizeEvent(closed)); got != `{"cartsync":1,"event":"resize","data":{"width":64,"height":64,"open":false}}` {
		t.Errorf("resize = %s", got)
	}
	if got := a.resizeEvent(closed); got != nil {
		t.Errorf("same size announced again: %s", got)
	}
	if got := a.resizeEvent(sizeData{Width: panelWidth, Height: 300, Open: true}); got == nil {
		t.Error("opening not announced")
	}
}

// The expired event says why the device was handed a new cart.
func TestExpiredEventSaysWhy(t *testing.T) {
	for _, erased := range []bool{false, true} {
		var a announcer
		a.readyEvent(testState(syncclient.Synced, 0))
		st := testState(syncclient.Synced, 0)
		st.CartExpired, st.CartErased = true, erased
		want := `{"cartsync":1,"event":"expired","data":{"reason":"expired"}}`
		if erased {
			want = `{"cartsync":1,"event":"expired","data":{"reason":"erased"}}`
		}
		var got []string
		for _, m := range a.stateEvents(st) {
			if strings.Contains(string(m), `"event":"expired"`) {
				got = append(got, string(m))
			}
		}
		if len(got) != 1 || got[0] != want {
			t.Errorf("erased %v: expired events %q, want %s", erased, got, want)
		}
	}
}

// Each edit the server refused is announced once, named by the op the
// widget saw in the outbox; one it never saw still says why.
func TestRejectedEvents(t *testing.T) {
	var a announcer
	ops := &opIndex{}
	ops.remember(cart.Op{Client: "c", Seq: 1, Kind: cart.KindAdd, SKU: "MUG", Quantity: 1, Details: &cart.Details{Name: "Mug"}})
	st := testState(syncclient.Synced, 0)
	refused := func(seq uint64, code cart.Code) protocol.Result {
		return protocol.Result{Client: "c", Seq: seq, Status: protocol.StatusRejected, Error: &cart.Error{Code: code, Message: string(code)}}
	}
	st.Rejected = []protocol.Result{refused(1, cart.CodeOutOfStock)}
	if got := a.rejectedEvents(st, ops); got != nil {
		t.Errorf("rejected events before ready: %s", got)
	}
	a.readyEvent(st)
	got := a.rejectedEvents(st, ops)
	if len(got) != 1 || string(got[0]) != `{"cartsync":1,"event":"rejected","data":{"sku":"MUG","key":"MUG","name":"Mug","code":"out_of_stock","message":"out_of_stock"}}` {
		t.Errorf("first refusal: %s", got)
	}
	if got := a.rejectedEvents(st, ops); got != nil {
		t.Errorf("the same refusal again: %s", got)
	}
	st.Rejected = append(st.Rejected, refused(7, cart.CodeNotSellable))
	got = a.rejectedEvents(st, ops)
	if len(got) != 1 || !strings.Contains(string(got[0]), `"sku":"","key":"","code":"not_sellable"`) {
		t.Errorf("a refusal of an op the widget never saw: %s", got)
	}
	// The limit met is passed on to the page, refused or reduced.
	two := 2
	limited := refused(8, cart.CodeOutOfStock)
	limited.Error.Available, limited.Error.LimitBy = &two, cart.LimitPerOrder
	st.Rejected = append(st.Rejected, limited)
	st.Reduced = []protocol.Result{{Client: "c", Seq: 9, Status: protocol.StatusApplied,
		Warnings: []cart.Warning{{Code: cart.CodeStockClamped, Message: "m", Limit: cart.Limit{Available: &two, LimitBy: cart.LimitStock}}}}}
	got = a.rejectedEvents(st, ops)
	if len(got) != 2 || !strings.Contains(string(got[0]), `"event":"rejected","data":{"sku":"","key":"","code":"out_of_stock","message":"out_of_stock","available":2,"limit_by":"per_order"}`) ||
		!strings.Contains(string(got[1]), `"event":"reduced","data":{"sku":"","key":"","code":"stock_clamped","message":"m","available":2,"limit_by":"stock"}`) {
		t.Errorf("a refusal and a reduction at a limit: %s", got)
	}
}
