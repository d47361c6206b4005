// Command wasmsize reports where the bytes of the widget's wasm go: the
// code of each Go package (runtime and standard library, go-app, the
// project, other modules), the data section, and the raw, gzip and brotli
// size of the file that is shipped, with an estimate of each package's share
// of the brotli download.
//
// It builds the package (./app by default) for GOOS=js GOARCH=wasm twice:
// once stripped as `make wasm` does (-s -w), the shipped file, and once
// unstripped, whose "name" section names every function. The Go linker
// writes those names with each rune other than a letter, digit, '_' or '.'
// replaced by '_', so the names are matched against the packages `go list
// -deps` gives for the same build. The code section holds each function's
// body. The data section carries no symbol names in wasm, so it is not
// split by package; where the header of the runtime's function table
// (pclntab) is found, the report splits off its function names, file
// tables and pc-value tables, which grow with the number of functions,
// from the rest (type descriptors, strings, function records, findfunctab
// and the packages' own tables).
//
//	go run ./syncserver/cmd/wasmsize                       # build ./app and report
//	go run ./syncserver/cmd/wasmsize -shipped web/app.wasm # sizes of the built file (and its .br)
//	go run ./syncserver/cmd/wasmsize -why net/http         # the linker's chain from main to net/http
//
// The brotli share of a package is estimated by compressing its functions
// on their own and scaling the parts so that they add up to the real size.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/andybalholm/brotli"
)

type config struct {
	pkg      string
	wasm     string
	shipped  string
	ldflags  string
	gcflags  string
	tags     string
	top      int
	why      string
	estimate int
}

func main() {
	var c config
	flag.StringVar(&c.pkg, "pkg", "./app", "the main package of the widget")
	flag.StringVar(&c.wasm, "wasm", "", "read this unstripped wasm of -pkg instead of building one")
	flag.StringVar(&c.shipped, "shipped", "", "the shipped (stripped) wasm, e.g. web/app.wasm; its .br is used when it is not older; default: build it")
	flag.StringVar(&c.ldflags, "ldflags", "", "extra linker flags for both builds (the shipped one adds -s -w)")
	flag.StringVar(&c.gcflags, "gcflags", "", "compiler flags for both builds, e.g. all=-l")
	flag.StringVar(&c.tags, "tags", "", "build tags for the builds and the package list")
	flag.IntVar(&c.top, "top", 20, "packages listed per group; 0 lists all")
	flag.StringVar(&c.why, "why", "", "print the linker's chain from the program's entry to the first function of this package (or symbol prefix) and exit")
	flag.IntVar(&c.estimate, "estimate-quality", 5, "brotli quality of the per-package estimate (0-11)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: wasmsize [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 || c.top < 0 || c.estimate < 0 || c.estimate > 11 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(context.Background(), c, os.Stdout); err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "wasmsize:") {
			msg = "wasmsize: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config, w io.Writer) error {
	tmp, err := os.MkdirTemp("", "wasmsize-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if c.why != "" {
		return why(ctx, c, tmp, w)
	}
	pkgs, err := listPackages(ctx, c.pkg, c.tags)
	if err != nil {
		return err
	}
	full := c.wasm
	if full == "" {
		full = filepath.Join(tmp, "full.wasm")
		if _, err := build(ctx, c, full, false); err != nil {
			return err
		}
	}
	shipped := c.shipped
	if shipped == "" {
		shipped = filepath.Join(tmp, "app.wasm")
		if _, err := build(ctx, c, shipped, true); err != nil {
			return err
		}
	}
	r, err := measure(full, shipped, pkgs, c.estimate)
	if err != nil {
		return err
	}
	r.Target = c.pkg
	return r.write(w, c.top)
}

// goEnv is the environment of every go command: the widget's platform.
func goEnv() []string {
	return append(os.Environ(), "GOOS=js", "GOARCH=wasm")
}

// listPackages lists the packages linked into pkg's js/wasm build.
func listPackages(ctx context.Context, pkg, tags string) ([]pkgInfo, error) {
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}\t{{.Name}}\t{{.Standard}}{{with .Module}}\t{{.Path}}\t{{.Main}}{{end}}"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Env = goEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %w\n%s", pkg, err, stderr.Bytes())
	}
	return parsePackageList(out)
}

// ErrPackageList is returned when the output of go list is not the expected table.
var ErrPackageList = errors.New("wasmsize: unexpected go list output")

func parsePackageList(out []byte) ([]pkgInfo, error) {
	var pkgs []pkgInfo
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 3 && len(f) != 5 {
			return nil, fmt.Errorf("%w: %q", ErrPackageList, sc.Text())
		}
		p := pkgInfo{Path: f[0], Name: f[1], Standard: f[2] == "true"}
		if len(f) == 5 {
			p.Module, p.Main = f[3], f[4] == "true"
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("%w: no packages", ErrPackageList)
	}
	return pkgs, nil
}

// build compiles c.pkg for js/wasm as `make wasm` does, stripped or not,
// and returns what the go command and the linker printed.
func build(ctx context.Context, c config, out string, strip bool) ([]byte, error) {
	ldflags := c.ldflags
	if strip {
		ldflags = strings.TrimSpace("-s -w " + ldflags)
	}
	args := []string{"build", "-trimpath", "-o", out}
	if ldflags != "" {
		args = append(args, "-ldflags", ldflags)
	}
	if c.gcflags != "" {
		args = append(args, "-gcflags", c.gcflags)
	}
	if c.tags != "" {
		args = append(args, "-tags", c.tags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, c.pkg)...)
	cmd.Env = goEnv()
	log, err := cmd.CombinedOutput()
	if err != nil {
		return log, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, log)
	}
	return log, nil
}

// compressedSizes returns the gzip (best) and brotli (quality 11) sizes of
// the shipped file. A .br beside it that is not older is taken as is
// (syncserver/cmd/precompress wrote it at the same quality).
func compressedSizes(name string, b []byte) (gz, br int, brFrom string, err error) {
	gz, err = compressedLen(b, func(w io.Writer) io.WriteCloser { z, _ := gzip.NewWriterLevel(w, gzip.BestCompression); return z })
	if err != nil {
		return 0, 0, "", err
	}
	if fi, err := os.Stat(name + ".br"); err == nil {
		if src, err := os.Stat(name); err == nil && !fi.ModTime().Before(src.ModTime()) {
			return gz, int(fi.Size()), filepath.Base(name + ".br"), nil
		}
	}
	// As syncserver/cmd/precompress compresses: quality 11, the default
	// window (4 MiB), so that both ways give the size that is served.
	start := time.Now()
	br, err = compressedLen(b, func(w io.Writer) io.WriteCloser { return brotli.NewWriterLevel(w, brotli.BestCompression) })
	fmt.Fprintf(os.Stderr, "wasmsize: brotli quality 11 of %s took %v\n", filepath.Base(name), time.Since(start).Round(time.Second))
	return gz, br, "", err
}

// brotliSize is the size of b compressed with brotli at quality, with a
// 16 MiB window (the shares of the parts of a file).
func brotliSize(b []byte, quality int) (int, error) {
	return compressedLen(b, func(w io.Writer) io.WriteCloser {
		return brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: quality, LGWin: 24})
	})
}

// compressedLen is the length of b written through the compressor
// newWriter makes.
func compressedLen(b []byte, newWriter func(io.Writer) io.WriteCloser) (int, error) {
	var cw countWriter
	w := newWriter(&cw)
	if _, err := w.Write(b); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return cw.n, nil
}

type countWriter struct{ n int }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}
