package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
)

// ErrNoNames is returned for a wasm without function names: one built
// with -ldflags=-s, like the shipped file.
var ErrNoNames = errors.New("wasmsize: the wasm has no function names (built with -s?); give an unstripped build")

// report is what measure finds.
type report struct {
	Target  string
	Shipped string // file name
	Raw     int    // shipped file
	Gzip    int
	Brotli  int
	BrFrom  string // the .br file the brotli size was read from, if any
	Warning string

	Code, Data, Other    int // parts of the shipped file
	DataSegs, Funcs      int
	BrCode, BrData, BrOt float64
	DataParts            []dataSize // the data section split, when the runtime's tables are found
	Packages             []*pkgSize
}

// dataSize is a part of the data section.
type dataSize struct {
	Name   string
	Raw    int // bytes of memory (the file omits runs of zeros)
	Brotli float64
}

// measure reads the unstripped build full for names and the shipped
// (stripped) build for sizes, and estimates each package's brotli share by
// compressing its functions at the given quality.
func measure(full, shipped string, pkgs []pkgInfo, quality int) (*report, error) {
	fb, err := os.ReadFile(full)
	if err != nil {
		return nil, err
	}
	fm, err := parseModule(fb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", full, err)
	}
	if !fm.HasNames {
		return nil, fmt.Errorf("%s: %w", full, ErrNoNames)
	}
	sb, err := os.ReadFile(shipped)
	if err != nil {
		return nil, err
	}
	sm, err := parseModule(sb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", shipped, err)
	}
	r := &report{Shipped: shipped, Raw: len(sb), DataSegs: sm.DataSegs, Funcs: len(sm.Funcs)}
	if sm.section(secCode, "") != fm.section(secCode, "") || len(sm.Funcs) != len(fm.Funcs) {
		r.Warning = fmt.Sprintf("the code of %s (%d bytes) differs from the unstripped build's (%d bytes): it was built from other sources or flags; the package figures describe the unstripped build",
			filepath.Base(shipped), sm.section(secCode, ""), fm.section(secCode, ""))
	}
	r.Gzip, r.Brotli, r.BrFrom, err = compressedSizes(shipped, sb)
	if err != nil {
		return nil, err
	}
	r.Packages = sizeByPackage(fm, newAttributor(pkgs))

	rest, dataBytes := r.splitShipped(sm, sb)

	// Each part compressed on its own, then scaled to the real size.
	var sum float64
	for _, p := range r.Packages {
		var b bytes.Buffer
		for _, part := range p.parts {
			b.Write(fb[part[0] : part[0]+part[1]])
		}
		n, err := brotliSize(b.Bytes(), quality)
		if err != nil {
			return nil, err
		}
		p.Brotli = float64(n)
		sum += p.Brotli
	}
	pieces := r.splitData(sm, sb, dataBytes)
	nd := 0
	for i, piece := range pieces {
		n, err := brotliSize(piece, quality)
		if err != nil {
			return nil, err
		}
		if r.DataParts != nil {
			r.DataParts[i].Brotli = float64(n)
		}
		nd += n
	}
	no, err := brotliSize(rest, quality)
	if err != nil {
		return nil, err
	}
	r.BrData, r.BrOt = float64(nd), float64(no)
	scale := float64(r.Brotli) / (sum + r.BrData + r.BrOt)
	for _, p := range r.Packages {
		p.Brotli *= scale
		r.BrCode += p.Brotli
	}
	r.BrData *= scale
	r.BrOt *= scale
	for i := range r.DataParts {
		r.DataParts[i].Brotli *= scale
	}
	return r, nil
}

// splitShipped splits the shipped file sb (parsed as sm) into its parts:
// function entries (r.Code), the data section (r.Data, returned as data)
// and the rest (r.Other, returned as rest: headers, types, imports,
// exports, the code section's count).
func (r *report) splitShipped(sm *module, sb []byte) (rest, data []byte) {
	var other bytes.Buffer
	for _, s := range sm.Sections {
		switch s.ID {
		case secCode:
			code := 0
			for _, f := range sm.Funcs {
				code += f.Size
			}
			r.Code += code
			other.Write(sb[s.Offset : s.Offset+s.Size-code])
		case secData:
			r.Data += s.Size
			data = sb[s.Offset : s.Offset+s.Size]
		default:
			other.Write(sb[s.Offset : s.Offset+s.Size])
		}
	}
	r.Other = r.Raw - r.Code - r.Data
	return other.Bytes(), data
}

// splitData splits the data section into the runtime's tables it can find
// in the memory image (r.DataParts, with what is left as the last part)
// and returns their bytes in the same order; without them, the whole
// section as one piece.
func (r *report) splitData(sm *module, sb, data []byte) [][]byte {
	mem := memoryImage(sm, sb)
	if mem == nil {
		return [][]byte{data}
	}
	parts := pclntabParts(mem)
	if parts == nil {
		return [][]byte{data}
	}
	var pieces [][]byte
	first, last := parts[0].Start, parts[len(parts)-1].End
	rest := append(append([]byte{}, mem[:first]...), mem[last:]...)
	left := r.Data
	for _, p := range parts {
		r.DataParts = append(r.DataParts, dataSize{Name: p.Name, Raw: p.End - p.Start})
		pieces = append(pieces, mem[p.Start:p.End])
		left -= p.End - p.Start
	}
	r.DataParts = append(r.DataParts, dataSize{Name: "types, strings, func records, findfunctab, tables", Raw: left})
	return append(pieces, rest)
}

const mib = 1 << 20

func (r *report) write(w io.Writer, top int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, raw int, br float64, extra string) {
		fmt.Fprintf(tw, "  %s\t%10d\t%5.1f%%\t%10.0f\t%5.1f%%\t%s\n", name, raw, 100*float64(raw)/float64(r.Raw), br, 100*br/float64(r.Brotli), extra)
	}
	from := "brotli quality 11"
	if r.BrFrom != "" {
		from = r.BrFrom
	}
	fmt.Fprintf(w, "%s for js/wasm, shipped %s: %d B raw (%.2f MiB), %d B gzip -9 (%.2f MiB), %d B brotli (%.3f MiB, %s)\n",
		r.Target, filepath.Base(r.Shipped), r.Raw, float64(r.Raw)/mib, r.Gzip, float64(r.Gzip)/mib, r.Brotli, float64(r.Brotli)/mib, from)
	if r.Warning != "" {
		fmt.Fprintf(w, "warning: %s\n", r.Warning)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(tw, "part\t     raw B\t raw %%\t  brotli B\tbr %%\t\n")
	row("code", r.Code, r.BrCode, fmt.Sprintf("%d functions", r.Funcs))
	row("data", r.Data, r.BrData, fmt.Sprintf("%d segments", r.DataSegs))
	for _, p := range r.DataParts {
		row("  "+p.Name, p.Raw, p.Brotli, "")
	}
	row("other sections", r.Other, r.BrOt, "")
	fmt.Fprintf(tw, "\t\t\t\t\t\n")

	groups := []string{groupStd, groupGoApp, groupProject, groupOther}
	type total struct {
		code, funcs, pkgs int
		br                float64
	}
	totals := map[string]*total{}
	for _, g := range groups {
		totals[g] = &total{}
	}
	for _, p := range r.Packages {
		t := totals[p.group()]
		t.code += p.Code
		t.funcs += p.Funcs
		t.pkgs++
		t.br += p.Brotli
	}
	fmt.Fprintf(tw, "code by group\t     raw B\t raw %%\t  brotli B\tbr %%\t\n")
	for _, g := range groups {
		t := totals[g]
		row(g, t.code, t.br, fmt.Sprintf("%d packages, %d functions", t.pkgs, t.funcs))
	}
	for _, g := range groups {
		t := totals[g]
		if t.pkgs == 0 {
			continue
		}
		fmt.Fprintf(tw, "\t\t\t\t\t\n")
		fmt.Fprintf(tw, "%s\t     raw B\t raw %%\t  brotli B\tbr %%\t\n", g)
		shown, restCode, restBr, restN := 0, 0, 0.0, 0
		for _, p := range r.Packages {
			if p.group() != g {
				continue
			}
			if top > 0 && shown == top {
				restCode += p.Code
				restBr += p.Brotli
				restN++
				continue
			}
			shown++
			row(p.Path, p.Code, p.Brotli, fmt.Sprintf("%d functions", p.Funcs))
		}
		if restN > 0 {
			row(fmt.Sprintf("(%d more)", restN), restCode, restBr, "")
		}
	}
	return tw.Flush()
}
