package widget

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/cartsync/cartsync/shared/cart"
)

// The arguments of the bridge's calls: each decoded and checked, with a
// bad_request naming what is wrong.

// call is a decoded request with its arguments.
type call struct {
	method  string
	sku     string
	qty     int
	opts    map[string]string
	details *cart.Details
	theme   *themeRequest
	token   string      // login
	policy  cart.Policy // login; "" for the server's default
}

// parseCall checks a request's method and arguments. Values that are well
// typed but out of bounds are left to the engine, which answers with the
// cart's codes.
func parseCall(r request) (call, error) {
	c := call{method: r.method}
	var err error
	switch r.method {
	case methodAdd:
		// [sku, quantity, details]
		if c.sku, err = argString(r.args, 0, "sku"); err != nil {
			return c, err
		}
		if c.qty, err = argInt(r.args, 1, "quantity"); err != nil {
			return c, err
		}
		c.details, c.opts, err = argDetails(r.args, 2)
	case methodSetQuantity:
		// [sku, quantity, options]
		if c.sku, err = argString(r.args, 0, "sku"); err != nil {
			return c, err
		}
		if c.qty, err = argInt(r.args, 1, "quantity"); err != nil {
			return c, err
		}
		c.opts, err = argOptions(r.args, 2)
	case methodRemove:
		// [sku, options]
		if c.sku, err = argString(r.args, 0, "sku"); err != nil {
			return c, err
		}
		c.opts, err = argOptions(r.args, 1)
	case methodTheme:
		// [{accent, background, ..., locale, checkout, messages}]
		c.theme, err = parseTheme(r.args)
	case methodLogin:
		// [token, {policy}]
		c.token, c.policy, err = argLogin(r.args)
	case methodClear, methodCart, methodOpen, methodClose, methodLogout:
	default:
		err = &bridgeError{code: codeUnknownMethod, message: fmt.Sprintf("unknown method %q", r.method)}
	}
	return c, err
}

// arg returns args[i], or nil if it is missing or null.
func arg(args []json.RawMessage, i int) json.RawMessage {
	if i >= len(args) || string(args[i]) == "null" {
		return nil
	}
	return args[i]
}

func argString(args []json.RawMessage, i int, name string) (string, error) {
	var s string
	a := arg(args, i)
	if a == nil || json.Unmarshal(a, &s) != nil {
		return "", badRequest("argument %d (%s) must be a string", i+1, name)
	}
	return s, nil
}

func argInt(args []json.RawMessage, i int, name string) (int, error) {
	n, ok := number(arg(args, i))
	if !ok {
		return 0, badRequest("argument %d (%s) must be a number", i+1, name)
	}
	v, err := n.Int64()
	if err != nil || int64(int(v)) != v {
		return 0, badRequest("argument %d (%s) must be an integer", i+1, name)
	}
	return int(v), nil
}

// number decodes a JSON number, and only a number: json.Number alone would
// take "2" too.
func number(raw json.RawMessage) (json.Number, bool) {
	raw = bytes.TrimSpace(raw)
	var n json.Number
	if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
		return "", false
	}
	return n, true
}

func argOptions(args []json.RawMessage, i int) (map[string]string, error) {
	var opts map[string]string
	if a := arg(args, i); a != nil && json.Unmarshal(a, &opts) != nil {
		return nil, badRequest("argument %d (options) must be an object of strings", i+1)
	}
	return opts, nil
}

// argDetails decodes add's details: {name, price, currency, image, options}.
func argDetails(args []json.RawMessage, i int) (*cart.Details, map[string]string, error) {
	a := arg(args, i)
	if a == nil {
		return nil, nil, nil
	}
	var d struct {
		Name     string            `json:"name"`
		Price    json.RawMessage   `json:"price"`
		Currency string            `json:"currency"`
		Image    string            `json:"image"`
		Options  map[string]string `json:"options"`
	}
	if err := json.Unmarshal(a, &d); err != nil {
		return nil, nil, badRequest("argument %d (details) must be {name, price, currency, image, options} with string values, a number price and string options", i+1)
	}
	var price int64
	if len(d.Price) > 0 && string(d.Price) != "null" {
		n, ok := number(d.Price)
		var err error
		if ok {
			price, err = n.Int64()
		}
		if !ok || err != nil {
			return nil, nil, badRequest("details.price must be an integer number of minor units")
		}
	}
	if d.Name == "" && price == 0 && d.Currency == "" && d.Image == "" {
		return nil, d.Options, nil
	}
	return &cart.Details{Name: d.Name, Price: price, Currency: d.Currency, Image: d.Image}, d.Options, nil
}

// argLogin decodes login's arguments: a user token (a non-empty string of
// at most maxTokenBytes) and optionally {policy}, one of merge, replace,
// keep and choose.
func argLogin(args []json.RawMessage) (string, cart.Policy, error) {
	tok, err := argString(args, 0, "token")
	if err != nil {
		return "", "", err
	}
	if tok == "" || len(tok) > maxTokenBytes {
		return "", "", badRequest("argument 1 (token) must be a non-empty string of at most %d bytes", maxTokenBytes)
	}
	a := arg(args, 1)
	if a == nil {
		return tok, "", nil
	}
	var o struct {
		Policy *string `json:"policy"`
	}
	if json.Unmarshal(a, &o) != nil {
		return "", "", badRequest("argument 2 must be {policy}, with policy a string")
	}
	p := cart.Policy("")
	if o.Policy != nil {
		p = cart.Policy(*o.Policy)
	}
	if p != "" && !p.Valid() {
		return "", "", badRequest("policy must be merge, replace, keep or choose, not %.40q", string(p))
	}
	return tok, p, nil
}
