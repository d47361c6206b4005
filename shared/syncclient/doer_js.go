//go:build js

package syncclient

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"syscall/js"
)

func defaultDoer() Doer { return fetchDoer{} }

// fetchDoer sends a request with the browser's fetch. net/http's own
// js/wasm Client does too, but linking http.Client links its Transport,
// TLS and HTTP/2 fallback: about a megabyte of brotli.
type fetchDoer struct{}

func (fetchDoer) Do(req *http.Request) (*http.Response, error) {
	opts := js.Global().Get("Object").New()
	opts.Set("method", req.Method)
	h := js.Global().Get("Headers").New()
	for k, vs := range req.Header {
		for _, v := range vs {
			h.Call("append", k, v)
		}
	}
	opts.Set("headers", h)
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		a := js.Global().Get("Uint8Array").New(len(b))
		js.CopyBytesToJS(a, b)
		opts.Set("body", a)
	}
	ac := js.Global().Get("AbortController").New()
	opts.Set("signal", ac.Get("signal"))
	resp, err := await(req, ac, js.Global().Call("fetch", req.URL.String(), opts))
	if err != nil {
		return nil, err
	}
	buf, err := await(req, ac, resp.Call("arrayBuffer"))
	if err != nil {
		return nil, err
	}
	a := js.Global().Get("Uint8Array").New(buf)
	body := make([]byte, a.Get("length").Int())
	js.CopyBytesToGo(body, a)
	status := resp.Get("status").Int()
	out := &http.Response{Status: strconv.Itoa(status), StatusCode: status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(body)), Request: req}
	each := js.FuncOf(func(_ js.Value, args []js.Value) any {
		out.Header.Add(args[1].String(), args[0].String()) // (value, name)
		return nil
	})
	resp.Get("headers").Call("forEach", each)
	each.Release()
	return out, nil
}

func await(req *http.Request, ac, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	// The callbacks release themselves when the promise settles, which
	// it does even after an abort: releasing them on return would leave
	// the promise calling released functions.
	ch := make(chan result, 1)
	var ok, fail js.Func
	ok = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: args[0]}
		ok.Release()
		fail.Release()
		return nil
	})
	fail = js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: errors.New("fetch: " + args[0].Call("toString").String())}
		ok.Release()
		fail.Release()
		return nil
	})
	p.Call("then", ok, fail)
	select {
	case r := <-ch:
		return r.v, r.err
	case <-req.Context().Done():
		ac.Call("abort")
		return js.Value{}, req.Context().Err()
	}
}
