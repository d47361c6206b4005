//go:build !js

package protocol

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
)

// checkKeys refuses, in data (one JSON value that encoding/json has read
// into a value of type t without error), what encoding/json takes without
// a word: a key given twice in one object (it keeps the last), and two keys
// that name the same field of t in different letter case ("kind" and
// "KIND": it keeps the last of them). A proxy or a validator in front of the
// server that reads the first key, or matches names exactly, would
// otherwise see another message than the one applied. A lone key in other
// letter case ("SKU" for "sku", as some serializers write them) is read as
// encoding/json reads it, and keys that name no field are ignored, with
// what they hold.
func checkKeys(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walkKeys(dec, t)
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// walkKeys reads the next value of dec, whose Go type is t, checking its
// objects' keys; nil skips the value unchecked (a key that names no field).
func walkKeys(dec *json.Decoder, t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && (reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType)) {
		t = nil // read its own way
	}
	tok, err := dec.Token()
	if err != nil {
		return Errorf(ErrMalformed, "not a valid message: %v", describeJSON(err))
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	if t == nil {
		return skipValue(dec)
	}
	if d == '[' {
		var elem reflect.Type
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			elem = t.Elem()
		}
		for dec.More() {
			if err := walkKeys(dec, elem); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch t.Kind() {
	case reflect.Struct:
		fields = fieldsOf(t)
	case reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]bool{}      // keys
	byField := map[string]string{} // field names, by the key that named them
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Errorf(ErrMalformed, "not a valid message: %v", describeJSON(err))
		}
		key, _ := tok.(string)
		if seen[key] {
			return Errorf(ErrMalformed, "key %q is given twice in one object", clip(key))
		}
		seen[key] = true
		next := elem
		if fields != nil {
			name, ft := fieldFor(fields, key)
			if name != "" {
				if other, ok := byField[name]; ok {
					return Errorf(ErrMalformed, "keys %q and %q both name the field %q", clip(other), clip(key), name)
				}
				byField[name] = key
			}
			next = ft
		}
		if err := walkKeys(dec, next); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// fieldFor returns the field of fields that key names, as encoding/json
// matches them (exactly, or else in any letter case), and its type; "" for
// none.
func fieldFor(fields map[string]reflect.Type, key string) (string, reflect.Type) {
	if ft, ok := fields[key]; ok {
		return key, ft
	}
	for name, ft := range fields {
		if strings.EqualFold(name, key) {
			return name, ft
		}
	}
	return "", nil
}

// skipValue reads the rest of a value whose opening bracket was read.
func skipValue(dec *json.Decoder) error {
	for depth := 1; depth > 0; {
		tok, err := dec.Token()
		if err != nil {
			return Errorf(ErrMalformed, "not a valid message: %v", describeJSON(err))
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '{' || d == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

// fieldTypes caches fieldsOf by struct type.
var fieldTypes sync.Map // reflect.Type → map[string]reflect.Type

// fieldsOf returns the JSON names of struct type t's fields, as
// encoding/json reads them, with their types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldTypes.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	addFields(t, out)
	fieldTypes.Store(t, out)
	return out
}

func addFields(t reflect.Type, out map[string]reflect.Type) {
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(ft, out) // promoted
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := out[name]; !ok {
			out[name] = f.Type
		}
	}
}
