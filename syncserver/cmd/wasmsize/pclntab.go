package main

import (
	"bytes"
	"encoding/binary"
)

// dataPart is a named range of the data in linear memory.
type dataPart struct {
	Name       string
	Start, End int // memory addresses
}

// pclnMagic starts the header of the runtime's function table since Go
// 1.20 (runtime/symtab.go, pcHeader): the magic, two zero bytes, the
// minimum instruction size (1 on wasm) and the pointer size (8).
var pclnMagic = []byte{0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8}

// memoryImage lays m's data segments out as the module's linear memory.
func memoryImage(m *module, file []byte) []byte {
	end := 0
	for _, s := range m.Segments {
		end = max(end, s.Addr+s.Size)
	}
	if end > 1<<30 {
		return nil
	}
	mem := make([]byte, end)
	for _, s := range m.Segments {
		copy(mem[s.Addr:], file[s.Offset:s.Offset+s.Size])
	}
	return mem
}

// pclntabParts finds the header of the runtime's function table in the
// memory image and returns the tables it locates: the function names, the
// file tables and the pc-value tables (stack sizes, line numbers). It
// returns nil when the header is not there (another Go version or no Go).
// What is left of the data are the type descriptors, strings, the function
// records and their funcdata, findfunctab and the packages' own tables.
func pclntabParts(mem []byte) []dataPart {
	const header = 8 + 8*8 // magic..ptrSize, then nfunc, nfiles, textStart and five offsets
	for at := 0; ; {
		i := bytes.Index(mem[at:], pclnMagic)
		if i < 0 {
			return nil
		}
		h := at + i
		at = h + 1
		if h%8 != 0 || h+header > len(mem) {
			continue
		}
		word := func(n int) int {
			v := binary.LittleEndian.Uint64(mem[h+8+8*n:])
			if v > uint64(len(mem)) {
				return -1
			}
			return int(v)
		}
		names, cu, files, pc, funcs := word(3), word(4), word(5), word(6), word(7)
		if names < header || !(names <= cu && cu <= files && files <= pc && pc <= funcs) || h+funcs > len(mem) {
			continue
		}
		return []dataPart{
			{"pclntab: function names", h + names, h + cu},
			{"pclntab: file tables", h + cu, h + pc},
			{"pclntab: pc-value tables (stack sizes, lines)", h + pc, h + funcs},
		}
	}
}
