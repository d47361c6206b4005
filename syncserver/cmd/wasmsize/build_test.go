package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportOfATinyBuild builds testdata/hello for js/wasm, stripped and
// not, and checks that the report finds its functions in their packages
// and that the parts add up to the shipped file.
func TestReportOfATinyBuild(t *testing.T) {
	const pkg = "./testdata/hello"
	ctx := t.Context()
	pkgs, err := listPackages(ctx, pkg, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := config{pkg: pkg}
	full, shipped := filepath.Join(dir, "full.wasm"), filepath.Join(dir, "app.wasm")
	if _, err := build(ctx, c, full, false); err != nil {
		t.Fatal(err)
	}
	if _, err := build(ctx, c, shipped, true); err != nil {
		t.Fatal(err)
	}
	if _, err := measure(shipped, shipped, pkgs, 1); !errors.Is(err, ErrNoNames) {
		t.Errorf("measuring with the stripped file for names: got %v, want ErrNoNames", err)
	}
	r, err := measure(full, shipped, pkgs, 1)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(shipped)
	if err != nil {
		t.Fatal(err)
	}
	if r.Raw != int(fi.Size()) || r.Code+r.Data+r.Other != r.Raw {
		t.Errorf("raw %d (file %d) = code %d + data %d + other %d?", r.Raw, fi.Size(), r.Code, r.Data, r.Other)
	}
	if r.Warning != "" {
		t.Errorf("warning for two builds of the same source: %s", r.Warning)
	}
	if r.Gzip <= 0 || r.Brotli <= 0 || r.Brotli >= r.Gzip || r.Gzip >= r.Raw {
		t.Errorf("raw %d, gzip %d, brotli %d: want raw > gzip > brotli > 0", r.Raw, r.Gzip, r.Brotli)
	}
	if len(r.DataParts) != 4 || r.DataParts[0].Raw == 0 || r.DataParts[2].Raw == 0 {
		t.Errorf("data parts %+v: want the pclntab's names, files and pc tables and the rest", r.DataParts)
	}
	by := map[string]*pkgSize{}
	code, br := 0, 0.0
	for _, p := range r.Packages {
		by[p.Path] = p
		code += p.Code
		br += p.Brotli
	}
	if code != r.Code {
		t.Errorf("packages add up to %d bytes of code, the code section has %d", code, r.Code)
	}
	if sum := br + r.BrData + r.BrOt; sum < float64(r.Brotli)-1 || sum > float64(r.Brotli)+1 {
		t.Errorf("brotli estimates add up to %.0f, the file is %d", sum, r.Brotli)
	}
	for path, group := range map[string]string{
		"runtime": groupStd,
		"github.com/cartsync/cartsync/syncserver/cmd/wasmsize/testdata/hello":       groupProject,
		"github.com/cartsync/cartsync/syncserver/cmd/wasmsize/testdata/hello/greet": groupProject,
	} {
		p := by[path]
		if p == nil || p.Code == 0 || p.group() != group {
			t.Errorf("package %s: got %+v, want code in group %s", path, p, group)
		}
	}
	if by["runtime"].Code < 10*by["github.com/cartsync/cartsync/syncserver/cmd/wasmsize/testdata/hello/greet"].Code {
		t.Errorf("runtime %d bytes, greet %d: the runtime should dwarf a one-line package", by["runtime"].Code, by["github.com/cartsync/cartsync/syncserver/cmd/wasmsize/testdata/hello/greet"].Code)
	}

	var out bytes.Buffer
	r.Target = pkg
	if err := r.write(&out, 3); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"./testdata/hello for js/wasm", "code by group", "pclntab: function names", "runtime and standard library", "project", "github.com/cartsync/cartsync/syncserver/cmd/wasmsize/testdata/hello/greet", "more)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestWhyFindsTheChain runs the linker with -dumpdep on testdata/hello.
func TestWhyFindsTheChain(t *testing.T) {
	var out bytes.Buffer
	c := config{pkg: "./testdata/hello", why: "github.com/cartsync/cartsync/syncserver/cmd/wasmsize/testdata/hello/greet"}
	if err := run(t.Context(), c, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 || strings.TrimSpace(lines[len(lines)-2]) != "main.main" || strings.TrimSpace(lines[len(lines)-1]) != "github.com/cartsync/cartsync/syncserver/cmd/wasmsize/testdata/hello/greet.Hello" {
		t.Errorf("got chain:\n%s\nwant it to end in main.main, greet.Hello", out.String())
	}
}
