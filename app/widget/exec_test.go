//go:build !js || !wasm

// These tests drive the client with go-app's test engine, which runs natively
// only: in the browser it would mount the widget for real.

package widget

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/syncclient"
)

// harness is a component whose only use is to hand a test a go-app context
// tied to a test engine (OnPreRender runs natively; OnMount does not).
type harness struct {
	app.Compo
	ctx app.Context
}

func (h *harness) OnPreRender(ctx app.Context) { h.ctx = ctx }
func (h *harness) Render() app.UI              { return app.Div() }

// newTestClient returns a client over a memory storage, with no host and
// no connection, and the engine that runs the dispatched UI work.
func newTestClient(t *testing.T) (*client, *Widget, app.TestEngine) {
	t.Helper()
	h := &harness{}
	e := app.NewTestEngine()
	if err := e.Load(h); err != nil {
		t.Fatal(err)
	}
	e.ConsumeAll()
	w := &Widget{}
	w.OnInit()
	c := &client{w: w, ctx: h.ctx, log: discardLogger(), jobs: newQueue(), run: context.Background()}
	eng, err := syncclient.New(syncclient.Config{
		Storage:  recordingStorage{Storage: syncclient.NewMemStorage(), ops: w.ops},
		Logger:   discardLogger(),
		OnChange: c.onChange,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.eng.Store(eng)
	return c, w, e
}

func request1(t *testing.T, s string) request {
	t.Helper()
	r, err := decodeRequest([]byte(s))
	if err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return r
}

func TestExec(t *testing.T) {
	c, w, e := newTestClient(t)
	ctx := context.Background()
	steps := []struct {
		req  string
		want string // the reply
	}{
		{`{"cartsync":1,"id":1,"method":"cart","args":[]}`,
			`{"cartsync":1,"id":1,"result":{"id":"","lines":[],"items":0,"version":0,"synced":true,"pending":0,"status":"offline"}}`},
		{`{"cartsync":1,"id":2,"method":"add","args":["TEE",2,{"name":"T-shirt","price":1999,"currency":"EUR","options":{"size":"M"}}]}`,
			`{"cartsync":1,"id":2,"result":{"id":"","lines":[{"key":"TEE?size=M","sku":"TEE","options":{"size":"M"},"quantity":2,"details":{"name":"T-shirt","image":"","price":1999,"currency":"EUR"}}],"items":2,"version":0,"synced":false,"pending":1,"status":"offline"}}`},
		{`{"cartsync":1,"id":3,"method":"setQuantity","args":["TEE",5,{"size":"M"}]}`,
			`{"cartsync":1,"id":3,"result":{"id":"","lines":[{"key":"TEE?size=M","sku":"TEE","options":{"size":"M"},"quantity":5,"details":{"name":"T-shirt","image":"","price":1999,"currency":"EUR"}}],"items":5,"version":0,"synced":false,"pending":2,"status":"offline"}}`},
		{`{"cartsync":1,"id":4,"method":"add","args":["TEE",0]}`,
			`{"cartsync":1,"id":4,"error":{"code":"invalid_quantity","message":"add quantity must be 1 to 999, got 0"}}`},
		{`{"cartsync":1,"id":5,"method":"add","args":["BAD?SKU",1]}`,
			`{"cartsync":1,"id":5,"error":{"code":"invalid_sku","message":"sku must not contain '?' or '\u0026'"}}`},
		{`{"cartsync":1,"id":6,"method":"remove","args":["TEE",{"size":"M"}]}`,
			`{"cartsync":1,"id":6,"result":{"id":"","lines":[],"items":0,"version":0,"synced":false,"pending":3,"status":"offline"}}`},
		{`{"cartsync":1,"id":7,"method":"clear","args":[]}`,
			`{"cartsync":1,"id":7,"result":{"id":"","lines":[],"items":0,"version":0,"synced":false,"pending":4,"status":"offline"}}`},
		{`{"cartsync":1,"id":8,"method":"theme","args":[{"accent":"url(https://evil.example/x)"}]}`,
			`{"cartsync":1,"id":8,"error":{"code":"bad_request","message":"theme accent: \"url(https://evil.example/x)\" is not allowed"}}`},
		{`{"cartsync":1,"id":9,"method":"theme","args":[{"accent":"#0a7","radius":"4px","font":""}]}`,
			`{"cartsync":1,"id":9,"result":true}`},
		{`{"cartsync":1,"id":10,"method":"login","args":["token",{"policy":"nope"}]}`,
			`{"cartsync":1,"id":10,"error":{"code":"bad_request","message":"policy must be merge, replace, keep or choose, not \"nope\""}}`},
		{`{"cartsync":1,"id":11,"method":"pay","args":[]}`,
			`{"cartsync":1,"id":11,"error":{"code":"unknown_method","message":"unknown method \"pay\""}}`},
		{`{"cartsync":1,"id":12,"method":"open","args":[]}`,
			`{"cartsync":1,"id":12,"result":true}`},
		// A set on a line the cart does not have is refused at once, and
		// queues nothing; a bad quantity is reported first.
		{`{"cartsync":1,"id":13,"method":"setQuantity","args":["GONE",2]}`,
			`{"cartsync":1,"id":13,"error":{"code":"line_not_found","message":"the cart has no line \"GONE\""}}`},
		{`{"cartsync":1,"id":14,"method":"setQuantity","args":["GONE",-1]}`,
			`{"cartsync":1,"id":14,"error":{"code":"invalid_quantity","message":"set quantity must be 0 to 999, got -1"}}`},
	}
	for _, s := range steps {
		r := request1(t, s.req)
		result, err := c.exec(ctx, r)
		if got := string(encodeReply(r.id, result, err)); got != s.want {
			t.Errorf("%s:\n got %s\nwant %s", r.method, got, s.want)
		}
	}
	e.ConsumeAll()
	if !w.open {
		t.Error("open did not open the panel")
	}
	if !w.loaded || w.st.Pending != 4 {
		t.Errorf("widget state: loaded %v, pending %d; want the engine's", w.loaded, w.st.Pending)
	}
}

func TestExecClampWarns(t *testing.T) {
	c, w, e := newTestClient(t)
	ctx := context.Background()
	for _, s := range []string{
		`{"cartsync":1,"id":1,"method":"add","args":["MUG",990,{"name":"Mug"}]}`,
		`{"cartsync":1,"id":2,"method":"add","args":["MUG",20]}`,
	} {
		if _, err := c.exec(ctx, request1(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	e.ConsumeAll()
	if want := []string{clampedText("Mug", 999)}; !reflect.DeepEqual(w.notes, want) {
		t.Errorf("notes = %q, want %q", w.notes, want)
	}
}

func TestEditsKeepTheirOrder(t *testing.T) {
	c, w, e := newTestClient(t)
	var replies []string // written by the queue's goroutine only
	for _, s := range []string{
		`{"cartsync":1,"id":1,"method":"add","args":["TEE",1,{"name":"T-shirt"}]}`,
		`{"cartsync":1,"id":2,"method":"setQuantity","args":["TEE",3]}`,
		`{"cartsync":1,"id":3,"method":"setQuantity","args":["TEE",2]}`,
	} {
		r := request1(t, s)
		c.jobs.push(func(ctx context.Context) {
			result, err := c.exec(ctx, r)
			replies = append(replies, string(encodeReply(r.id, result, err)))
		})
	}
	c.step(cart.LineKey("TEE", nil), +1) // from the quantity when it runs: 2
	ctx, cancel := context.WithCancel(context.Background())
	c.jobs.push(func(context.Context) { cancel() })
	c.jobs.run(ctx) // returns once the queue is empty and ctx ended
	e.ConsumeAll()
	if len(replies) != 3 {
		t.Fatalf("replies: %q", replies)
	}
	for i, want := range []string{`"quantity":1`, `"quantity":3`, `"quantity":2`} {
		if !strings.Contains(replies[i], want) {
			t.Errorf("reply %d = %s, want %s", i+1, replies[i], want)
		}
	}
	if l := w.line(cart.LineKey("TEE", nil)); l == nil || l.Quantity != 3 {
		t.Errorf("after the + step: %+v, want quantity 3", l)
	}
}

// + on a line at the most a cart holds says so, and sends nothing.
func TestStepAtTheMost(t *testing.T) {
	c, w, e := newTestClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	c.jobs.push(func(ctx context.Context) {
		if _, err := c.exec(ctx, request1(t, `{"cartsync":1,"id":1,"method":"add","args":["MUG",999,{"name":"Mug"}]}`)); err != nil {
			t.Error(err)
		}
	})
	c.step(cart.LineKey("MUG", nil), +1)
	c.jobs.push(func(context.Context) { cancel() })
	c.jobs.run(ctx)
	e.ConsumeAll()
	if l := w.line(cart.LineKey("MUG", nil)); l == nil || l.Quantity != 999 || w.st.Pending != 1 {
		t.Errorf("after + at the most: %+v with %d pending, want 999 and the add alone", l, w.st.Pending)
	}
	if want := "Mug: 999 is the most a cart can hold."; len(w.notes) == 0 || w.notes[len(w.notes)-1] != want {
		t.Errorf("notes = %q, want %q last", w.notes, want)
	}
}

// TestReconnectSkipsTheBackoff: reconnect (the browser's online and offline
// events) ends the engine's wait before its next attempt and dials at once.
func TestReconnectSkipsTheBackoff(t *testing.T) {
	dials := make(chan struct{}, 10)
	eng, err := syncclient.New(syncclient.Config{
		Storage: syncclient.NewMemStorage(),
		Logger:  discardLogger(),
		Dial: func(context.Context) (syncclient.Conn, error) {
			dials <- struct{}{}
			return nil, errors.New("offline")
		},
		BackoffBase: time.Hour,
		BackoffCap:  time.Hour,
		Rand:        func() float64 { return 0.99 },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &client{log: discardLogger(), run: ctx}
	done := make(chan struct{})
	go func() { defer close(done); c.keepSyncing(eng) }()
	defer func() { cancel(); <-done }()

	<-dials
	select {
	case <-dials:
		t.Fatal("dialled again before the backoff")
	case <-time.After(50 * time.Millisecond):
	}
	for i := 0; i < 2; i++ {
		c.reconnect("test")
		select {
		case <-dials:
		case <-time.After(5 * time.Second):
			t.Fatalf("reconnect %d did not dial again", i+1)
		}
	}
}

func TestLogLine(t *testing.T) {
	for _, c := range []struct {
		args []any
		want string
	}{
		{nil, "sync stopped"},
		{[]any{"err", errors.New("dial: refused"), "attempt", 3}, `sync stopped err="dial: refused" attempt=3`},
		{[]any{"cart", "", "note", `say "hi"`}, `sync stopped cart="" note="say \"hi\""`},
		{[]any{"a=b", "x=y", "lonely"}, `sync stopped a=b="x=y" !BADKEY=lonely`},
	} {
		if got := logLine("sync stopped", c.args); got != c.want {
			t.Errorf("logLine(%v) = %s, want %s", c.args, got, c.want)
		}
	}
}

// The note that the shopper signed out goes at the next login: it no
// longer holds.
func TestLoginDropsTheSignedOutNote(t *testing.T) {
	c, w, e := newTestClient(t)
	w.addNote(tr(noteSignedOut))
	w.addNote("another note")
	r := request1(t, `{"cartsync":1,"id":1,"method":"login","args":["user:ann"]}`)
	if _, err := c.exec(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	e.ConsumeAll()
	if got := strings.Join(w.notes, "|"); got != "another note" {
		t.Errorf("notes after login: %q, want the signed-out note gone and the other kept", got)
	}
	if !c.loggedIn.Load() {
		t.Error("login not recorded: the widget would hide the account's cart after the grace")
	}
}

// An add is said to be limited only when the line is at the maximum and
// the add would have passed it: not when another tab or a push lowered
// the line between the two reads.
func TestClampedAdd(t *testing.T) {
	for _, tt := range []struct {
		before, qty, after int
		want               bool
	}{
		{990, 20, 999, true},
		{3, 2, 5, false},
		{3, 2, 2, false},    // another tab set the line to 2 meanwhile
		{998, 5, 5, false},  // another tab removed it, this add made it 5
		{999, 1, 999, true}, // already at the maximum
		{500, 499, 999, false},
	} {
		if got := clampedAdd(tt.before, tt.qty, tt.after, 999); got != tt.want {
			t.Errorf("clampedAdd(%d, %d, %d, 999) = %v, want %v", tt.before, tt.qty, tt.after, got, tt.want)
		}
	}
}
