//go:build !js

package protocol

import (
	"bytes"
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"unicode/utf8"
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
// what they hold. It reads the bytes itself (data is valid JSON): a walk
// with json.Decoder's tokens cost four times encoding/json's own read.
func checkKeys(data []byte, t reflect.Type) error {
	k := keyScanner{b: data}
	return k.value(t)
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// walkTypes caches walkType.
var walkTypes sync.Map // reflect.Type → reflect.Type (nil for none)

// walkType is t without its pointers, or nil for a type that reads itself
// (json.Unmarshaler, encoding.TextUnmarshaler): its keys are its own.
func walkType(t reflect.Type) reflect.Type {
	if t == nil {
		return nil
	}
	if w, ok := walkTypes.Load(t); ok {
		w, _ := w.(reflect.Type)
		return w
	}
	w := t
	for w.Kind() == reflect.Pointer {
		w = w.Elem()
	}
	if reflect.PointerTo(w).Implements(unmarshalerType) || reflect.PointerTo(w).Implements(textUnmarshalerType) {
		walkTypes.Store(t, nil)
		return nil
	}
	walkTypes.Store(t, w)
	return w
}

// keyScanner walks valid JSON in b from i.
type keyScanner struct {
	b []byte
	i int
}

func (k *keyScanner) space() {
	for k.i < len(k.b) && (k.b[k.i] == ' ' || k.b[k.i] == '\t' || k.b[k.i] == '\n' || k.b[k.i] == '\r') {
		k.i++
	}
}

// value reads the next value, whose Go type is t: nil reads it unchecked
// (what a key that names no field holds).
func (k *keyScanner) value(t reflect.Type) error {
	t = walkType(t)
	k.space()
	if k.i >= len(k.b) {
		return nil
	}
	switch k.b[k.i] {
	case '"':
		k.skipStr()
	case '[':
		k.i++
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for {
			k.space()
			if k.i >= len(k.b) || k.b[k.i] == ']' {
				k.i++
				return nil
			}
			if k.b[k.i] == ',' {
				k.i++
				continue
			}
			if err := k.value(elem); err != nil {
				return err
			}
		}
	case '{':
		return k.object(t)
	default: // a number, true, false or null
		for k.i < len(k.b) && !strings.ContainsRune(",]} \t\n\r", rune(k.b[k.i])) {
			k.i++
		}
	}
	return nil
}

// object reads an object (at its brace) whose Go type is t.
func (k *keyScanner) object(t reflect.Type) error {
	k.i++
	var fields *fieldSet
	var elem reflect.Type
	check := t != nil
	if check {
		switch t.Kind() {
		case reflect.Struct:
			fields = fieldsOf(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	var keyBuf [16][]byte
	var namedBuf [16]int
	keys, named := keyBuf[:0], namedBuf[:0] // the keys read, and the fields they named
	var many map[string]bool                // the keys, past len(keyBuf): no quadratic look-ups
	for {
		k.space()
		if k.i >= len(k.b) || k.b[k.i] == '}' {
			k.i++
			return nil
		}
		if k.b[k.i] == ',' {
			k.i++
			continue
		}
		key := k.str()
		k.space()
		k.i++ // the colon
		next := elem
		if check {
			twice := many[string(key)]
			for _, o := range keys {
				twice = twice || bytes.Equal(o, key)
			}
			if twice {
				return Errorf(ErrMalformed, "key %q is given twice in one object", clip(string(key)))
			}
			switch {
			case many != nil:
				many[string(key)] = true
			case len(keys) < len(keyBuf):
				keys = append(keys, key)
			default:
				many = make(map[string]bool, 2*len(keyBuf))
				for _, o := range keys {
					many[string(o)] = true
				}
				many[string(key)] = true
				keys = keys[:0]
			}
		}
		if fields != nil {
			next = nil
			if f := fields.find(key); f >= 0 {
				for _, o := range named {
					if o == f {
						return Errorf(ErrMalformed, "two keys name the field %q (one is %q)", fields.list[f].name, clip(string(key)))
					}
				}
				named = append(named, f)
				next = fields.list[f].t
			}
		}
		if err := k.value(next); err != nil {
			return err
		}
	}
}

// str reads a string (at its quote) and returns it unescaped (its bytes
// in b when it has no escape).
func (k *keyScanner) str() []byte {
	start := k.i
	escaped := k.skipStr()
	raw := k.b[start:min(k.i, len(k.b))]
	if !escaped && utf8.Valid(raw) {
		return raw[1 : len(raw)-1]
	}
	var s string
	json.Unmarshal(raw, &s) // as encoding/json reads it: "\u006bind" is kind, a bad byte U+FFFD
	return []byte(s)
}

// skipStr reads a string (at its quote), and reports whether it has an
// escape.
func (k *keyScanner) skipStr() bool {
	k.i++
	escaped := false
	for k.i < len(k.b) && k.b[k.i] != '"' {
		if k.b[k.i] == '\\' {
			escaped = true
			k.i++
		}
		k.i++
	}
	k.i++
	return escaped
}

// fieldSet is a struct type's fields as encoding/json reads them.
type fieldSet struct {
	byName map[string]int
	list   []field
}

type field struct {
	name string
	fold []byte // name, to compare with bytes.EqualFold as encoding/json does
	t    reflect.Type
}

// find returns the index of the field key names, as encoding/json matches
// them (exactly, or else in any letter case); -1 for none.
func (fs *fieldSet) find(key []byte) int {
	if i, ok := fs.byName[string(key)]; ok {
		return i
	}
	for i, f := range fs.list {
		if bytes.EqualFold(f.fold, key) {
			return i
		}
	}
	return -1
}

// fieldTypes caches fieldsOf by struct type.
var fieldTypes sync.Map // reflect.Type → *fieldSet

// fieldsOf returns the fields of struct type t, as encoding/json reads
// them.
func fieldsOf(t reflect.Type) *fieldSet {
	if f, ok := fieldTypes.Load(t); ok {
		return f.(*fieldSet)
	}
	fs := &fieldSet{byName: map[string]int{}}
	addFields(t, fs)
	fieldTypes.Store(t, fs)
	return fs
}

func addFields(t reflect.Type, fs *fieldSet) {
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
				addFields(ft, fs) // promoted
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, ok := fs.byName[name]; !ok {
			fs.byName[name] = len(fs.list)
			fs.list = append(fs.list, field{name: name, fold: []byte(name), t: f.Type})
		}
	}
}
