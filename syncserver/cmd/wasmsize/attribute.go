package main

import (
	"cmp"
	"slices"
	"strings"
)

// Groups of packages, in the order the report lists them.
const (
	groupStd     = "runtime and standard library"
	groupGoApp   = "go-app"
	groupProject = "project"
	groupOther   = "other modules"
)

// goAppModule is the module path prefix of go-app, whatever its major version.
const goAppModule = "github.com/maxence-charriere/go-app/"

// Pseudo-packages for code that belongs to no Go package.
const (
	pkgUnnamed   = "(functions without a name)"
	pkgGenerated = "(compiler-generated)"
	pkgRuntimeAs = "(runtime assembly)"
)

// pkgInfo is one package of the build, as `go list -deps` describes it.
type pkgInfo struct {
	Path     string // import path
	Name     string // package name: "main" matters, its symbols say main
	Standard bool
	Module   string // module path; "" for the standard library
	Main     bool   // the module is the main module
}

func (p pkgInfo) group() string {
	switch {
	case p.Standard:
		return groupStd
	case strings.HasPrefix(p.Module+"/", goAppModule):
		return groupGoApp
	case p.Main:
		return groupProject
	default:
		return groupOther
	}
}

// mangle spells a symbol prefix the way the Go linker writes function
// names into the wasm name section: every rune other than a letter, a
// digit, '_' and '.' becomes '_' (cmd/link/internal/wasm, nameRegexp).
func mangle(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == '.' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// attributor maps the mangled function names of a Go wasm binary back to
// the packages of the build.
type attributor struct {
	byPrefix map[string]pkgInfo // mangled symbol prefix -> package
}

func newAttributor(pkgs []pkgInfo) *attributor {
	a := &attributor{byPrefix: make(map[string]pkgInfo, len(pkgs))}
	for _, p := range pkgs {
		prefix := p.Path
		if p.Name == "main" {
			prefix = "main"
		}
		a.byPrefix[mangle(prefix)] = p
	}
	return a
}

// packageOf returns the package whose code a function is: the longest
// package prefix followed by '.'. Equality and hash functions the compiler
// writes for a type (type:.eq.T) count for the type's package.
func (a *attributor) packageOf(name string) pkgInfo {
	if name == "" {
		return pkgInfo{Path: pkgUnnamed, Standard: true}
	}
	generated := false
	for _, p := range []string{"type_.eq.", "type_.hash."} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			name, generated = rest, true
			break
		}
	}
	best, found := pkgInfo{}, false
	for i := 0; i < len(name); i++ {
		if name[i] != '.' {
			continue
		}
		if p, ok := a.byPrefix[name[:i]]; ok {
			best, found = p, true
		}
	}
	switch {
	case found:
		return best
	case generated || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "type_"):
		return pkgInfo{Path: pkgGenerated, Standard: true}
	default:
		// _rt0_wasm_js, wasm_export_run, memeqbody and the like.
		return pkgInfo{Path: pkgRuntimeAs, Standard: true}
	}
}

// pkgSize is the code of one package in a binary.
type pkgSize struct {
	pkgInfo
	Funcs  int
	Code   int      // bytes in the code section
	Brotli float64  // estimated share of the compressed file
	parts  [][2]int // offset and size of each function in the file
}

// sizeByPackage sums the code of m's functions by package, largest first.
func sizeByPackage(m *module, a *attributor) []*pkgSize {
	by := map[string]*pkgSize{}
	for _, f := range m.Funcs {
		p := a.packageOf(f.Name)
		s := by[p.Path]
		if s == nil {
			s = &pkgSize{pkgInfo: p}
			by[p.Path] = s
		}
		s.Funcs++
		s.Code += f.Size
		s.parts = append(s.parts, [2]int{f.Offset, f.Size})
	}
	out := make([]*pkgSize, 0, len(by))
	for _, s := range by {
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y *pkgSize) int {
		if c := cmp.Compare(y.Code, x.Code); c != 0 {
			return c
		}
		return strings.Compare(x.Path, y.Path)
	})
	return out
}
