package main

import (
	"bytes"
	"errors"
	"fmt"
)

// The parts of the WebAssembly binary format (core spec, "Binary Format",
// Modules) that a size report needs: the section headers, the number of
// imported functions, the size of each function body in the code section,
// the data segments, and the function names of the custom "name" section.

// Section ids of the core spec.
const (
	secCustom   = 0
	secImport   = 2
	secFunction = 3
	secCode     = 10
	secData     = 11
)

// Errors of parseModule. A *FormatError wraps ErrNotWasm or ErrTruncated.
var (
	// ErrNotWasm is the cause when the input has no wasm magic and version 1.
	ErrNotWasm = errors.New("wasmsize: not a WebAssembly 1.0 binary")
	// ErrTruncated is the cause when a length or count runs past its section or the file.
	ErrTruncated = errors.New("wasmsize: truncated or malformed wasm")
)

// FormatError tells where in the file the binary could not be read.
type FormatError struct {
	Offset int    // byte offset in the file
	What   string // what was being read
	Err    error  // ErrNotWasm or ErrTruncated
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%v: %s at byte %d", e.Err, e.What, e.Offset)
}

func (e *FormatError) Unwrap() error { return e.Err }

// section is one section of the module, header included in Size.
type section struct {
	ID     byte
	Name   string // custom sections only
	Offset int    // of the id byte in the file
	Size   int    // bytes in the file: id, size field and contents
}

// function is one function defined in the module (not imported).
type function struct {
	Index  int    // index in the function index space (imports first)
	Name   string // from the "name" section; "" if the module has none
	Offset int    // of its entry in the file
	Size   int    // bytes of its entry in the code section, size field included
}

// segment is an active data segment: Size bytes at Offset in the file
// are copied to linear memory at Addr when the module starts.
type segment struct {
	Addr, Offset, Size int
}

// module is what parseModule reads from a wasm binary.
type module struct {
	Size      int // whole file
	Sections  []section
	Imports   int // imported functions
	Funcs     []function
	DataBytes int // data segment contents, without their headers
	DataSegs  int
	Segments  []segment // active segments placed by an i32.const address
	HasNames  bool      // a "name" section with function names was present
}

// section returns the total size of the sections with this id (and name, for custom ones).
func (m *module) section(id byte, name string) int {
	n := 0
	for _, s := range m.Sections {
		if s.ID == id && s.Name == name {
			n += s.Size
		}
	}
	return n
}

var wasmHeader = []byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00}

// parseModule reads the sections of a wasm binary. It checks only what
// it reads: the result of a module that a browser would refuse for other
// reasons is unspecified, but a malformed length never panics.
func parseModule(b []byte) (*module, error) {
	if !bytes.HasPrefix(b, wasmHeader) {
		return nil, &FormatError{Offset: 0, What: "header", Err: ErrNotWasm}
	}
	m := &module{Size: len(b)}
	r := &reader{b: b, off: len(wasmHeader)}
	names := map[int]string{}
	for r.off < len(b) {
		start := r.off
		id := r.byte("section id")
		size := r.u32("section size")
		body := r.bytes(size, "section contents")
		if r.err != nil {
			return nil, r.err
		}
		s := section{ID: id, Offset: start, Size: r.off - start}
		sr := &reader{b: b[:r.off], off: r.off - len(body)}
		switch id {
		case secCustom:
			s.Name = sr.name("custom section name")
			if s.Name == "name" {
				readNames(sr, names)
				m.HasNames = true
			}
		case secImport:
			m.Imports = readImports(sr)
		case secFunction:
			n := sr.u32("function count")
			if sr.err == nil && len(m.Funcs) == 0 {
				m.Funcs = make([]function, 0, n)
			}
		case secCode:
			m.Funcs = m.Funcs[:0]
			n := sr.u32("code count")
			for i := 0; i < n && sr.err == nil; i++ {
				fs := sr.off
				sz := sr.u32("function body size")
				sr.bytes(sz, "function body")
				m.Funcs = append(m.Funcs, function{Offset: fs, Size: sr.off - fs})
			}
		case secData:
			n := sr.u32("data segment count")
			for i := 0; i < n && sr.err == nil; i++ {
				seg, placed := readSegment(sr)
				m.DataBytes += seg.Size
				m.DataSegs++
				if placed {
					m.Segments = append(m.Segments, seg)
				}
			}
		}
		if sr.err != nil {
			return nil, sr.err
		}
		m.Sections = append(m.Sections, s)
	}
	for i := range m.Funcs {
		m.Funcs[i].Index = m.Imports + i
		m.Funcs[i].Name = names[m.Imports+i]
	}
	return m, nil
}

// readImports counts the function imports of an import section.
func readImports(r *reader) int {
	funcs := 0
	n := r.u32("import count")
	for i := 0; i < n && r.err == nil; i++ {
		r.name("import module")
		r.name("import name")
		switch kind := r.byte("import kind"); kind {
		case 0x00: // func: type index
			r.u32("import type")
			funcs++
		case 0x01: // table: reftype, limits
			r.byte("table type")
			r.limits()
		case 0x02: // memory: limits
			r.limits()
		case 0x03: // global: valtype, mutability
			r.byte("global type")
			r.byte("global mutability")
		default:
			r.fail("import kind")
		}
	}
	return funcs
}

// readNames reads the function names subsection (id 1) of a "name"
// section into names and skips the others (module and local names).
func readNames(r *reader, names map[int]string) {
	for r.off < len(r.b) && r.err == nil {
		id := r.byte("name subsection id")
		size := r.u32("name subsection size")
		sub := r.bytes(size, "name subsection")
		if id != 1 || r.err != nil {
			continue
		}
		sr := &reader{b: r.b[:r.off], off: r.off - len(sub)}
		n := sr.u32("function name count")
		for i := 0; i < n && sr.err == nil; i++ {
			idx := sr.u32("function index")
			names[idx] = sr.name("function name")
		}
		if sr.err != nil {
			r.err = sr.err
		}
	}
}

// readSegment reads one data segment. placed says that its address is a
// constant, as the Go linker writes it.
func readSegment(r *reader) (seg segment, placed bool) {
	addr := int64(-1)
	switch flags := r.u32("data segment flags"); flags {
	case 0: // active, memory 0, offset expression
		addr = r.constExpr()
	case 1: // passive
	case 2: // active, explicit memory index
		r.u32("data memory index")
		addr = r.constExpr()
	default:
		r.fail("data segment flags")
		return segment{}, false
	}
	n := r.u32("data segment size")
	seg = segment{Addr: int(addr), Offset: r.off, Size: n}
	r.bytes(n, "data segment contents")
	return seg, addr >= 0 && r.err == nil
}

// reader reads LEB128 numbers, names and byte runs, keeping the first error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = &FormatError{Offset: r.off, What: what, Err: ErrTruncated}
	}
}

func (r *reader) byte(what string) byte {
	if r.err != nil || r.off >= len(r.b) {
		r.fail(what)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// u32 reads an unsigned LEB128 number of at most 32 bits.
func (r *reader) u32(what string) int {
	var v uint64
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte(what)
		if r.err != nil {
			return 0
		}
		v |= uint64(c&0x7f) << shift
		if c&0x80 == 0 {
			if v > 1<<32-1 {
				break
			}
			return int(v)
		}
	}
	r.fail(what)
	return 0
}

func (r *reader) bytes(n int, what string) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		r.fail(what)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) name(what string) string {
	return string(r.bytes(r.u32(what), what))
}

func (r *reader) limits() {
	if r.byte("limits flag") == 1 {
		r.u32("limits min")
	}
	r.u32("limits")
}

// constExpr reads a constant expression, instructions up to the end
// opcode, and returns its value if it is one i32.const of a non-negative
// number (Go writes i32.const ADDR), else -1.
func (r *reader) constExpr() int64 {
	value, n := int64(-1), 0
	for r.err == nil {
		op := r.byte("constant expression")
		n++
		switch op {
		case 0x0b: // end
			if n != 2 {
				return -1
			}
			return value
		case 0x41: // i32.const, signed LEB128
			var v int64
			shift := 0
			for r.err == nil {
				c := r.byte("i32.const operand")
				v |= int64(c&0x7f) << shift
				shift += 7
				if c&0x80 == 0 {
					if c&0x40 != 0 && shift < 64 {
						v |= -1 << shift
					}
					break
				}
				if shift > 35 {
					r.fail("i32.const operand")
				}
			}
			if v >= 0 {
				value = v
			}
		case 0x42, 0x23: // i64.const (LEB128), global.get
			for r.byte("constant operand")&0x80 != 0 && r.err == nil {
			}
		case 0x44: // f64.const
			r.bytes(8, "f64 operand")
		case 0x43: // f32.const
			r.bytes(4, "f32 operand")
		default:
			r.fail("constant expression opcode")
		}
	}
	return -1
}
