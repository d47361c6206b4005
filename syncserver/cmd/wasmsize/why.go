package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// ErrNotLinked is returned by -why when no symbol of the package is reachable.
var ErrNotLinked = errors.New("wasmsize: not linked")

// why links c.pkg with -dumpdep, with which the linker prints "parent ->
// symbol" the first time it marks a symbol reachable, and prints the chain
// from the program's entry to the first symbol of c.why.
func why(ctx context.Context, c config, tmp string, w io.Writer) error {
	cc := c
	cc.ldflags = strings.TrimSpace("-dumpdep " + c.ldflags)
	out, err := build(ctx, cc, filepath.Join(tmp, "why.wasm"), false)
	if err != nil {
		return err
	}
	chain, err := reachChain(bytes.NewReader(out), c.why)
	if err != nil {
		return err
	}
	for i, s := range chain {
		fmt.Fprintf(w, "%s%s\n", strings.Repeat("  ", min(i, 1)), s)
	}
	return nil
}

// matches reports whether sym is a function or variable of package target
// that the source names, not one of the compiler's (pkg..inittask,
// pkg.init, pkg.f.arginfo1, ...), or whether sym starts with target when
// target names a symbol.
func matches(sym, target string) bool {
	if strings.Contains(target, ".") && !strings.HasSuffix(target, ".") && strings.Contains(target[strings.LastIndex(target, "/")+1:], ".") {
		return strings.HasPrefix(sym, target)
	}
	rest, ok := strings.CutPrefix(sym, target+".")
	if !ok || strings.HasPrefix(rest, ".") || rest == "init" || strings.HasPrefix(rest, "init.") {
		return false
	}
	for _, aux := range []string{".arginfo", ".argliveinfo", ".args_stackmap", ".stkobj", ".opendefer", ".wrapinfo"} {
		if strings.Contains(rest, aux) {
			return false
		}
	}
	return true
}

// reachChain reads the linker's -dumpdep output and returns the chain of
// symbols from the root to the first one that is in package target (its
// name starts with target followed by '.') or starts with target when
// target names a symbol, as in "net/http.(*Transport)".
func reachChain(dump io.Reader, target string) ([]string, error) {
	parent := map[string]string{}
	found := ""
	sc := bufio.NewScanner(dump)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		from, to, ok := strings.Cut(sc.Text(), " -> ")
		if !ok {
			continue
		}
		from = strings.TrimSuffix(from, " <UsedInIface>")
		to = strings.TrimSuffix(to, " <UsedInIface>")
		if _, seen := parent[to]; !seen {
			parent[to] = from
		}
		if found == "" && matches(to, target) {
			found = to
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if found == "" {
		return nil, fmt.Errorf("%w: %s", ErrNotLinked, target)
	}
	chain := []string{found}
	for s := found; len(chain) <= len(parent); {
		p, ok := parent[s]
		if !ok {
			break
		}
		chain = append(chain, p)
		s = p
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain, nil
}
