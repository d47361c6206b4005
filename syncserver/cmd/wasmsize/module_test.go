package main

import (
	"errors"
	"strings"
	"testing"
)

// uleb appends v as unsigned LEB128.
func uleb(b []byte, v int) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func name(b []byte, s string) []byte { return append(uleb(b, len(s)), s...) }

func sec(id byte, body []byte) []byte {
	return append(uleb([]byte{id}, len(body)), body...)
}

// tinyModule writes by hand a module shaped like Go's output: two
// imported functions, three defined ones with bodies of 3, 4 and 200
// bytes, two data segments, a producers section and a name section.
func tinyModule(withNames bool) []byte {
	m := append([]byte{}, wasmHeader...)
	m = append(m, sec(1, []byte{1, 0x60, 1, 0x7f, 1, 0x7f})...) // one type: (i32) -> i32
	var imp []byte
	imp = uleb(imp, 3)
	imp = append(name(name(imp, "gojs"), "runtime.wasmExit"), 0x00, 0)
	imp = append(name(name(imp, "env"), "mem"), 0x02, 0x00, 1) // a memory import: not a function
	imp = append(name(name(imp, "gojs"), "syscall/js.valueGet"), 0x00, 0)
	m = append(m, sec(secImport, imp)...)
	m = append(m, sec(secFunction, []byte{3, 0, 0, 0})...)
	code := uleb(nil, 3)
	code = append(code, 2, 0, 0x0b)                      // main.main: 3 bytes with its size
	code = append(code, 3, 0, 0x01, 0x0b)                // 4 bytes
	code = append(uleb(code, 198), make([]byte, 198)...) // 2-byte size + 198 = 200
	m = append(m, sec(secCode, code)...)
	data := uleb(nil, 2)
	data = append(data, 0, 0x41, 0x80, 0x20, 0x0b) // active, i32.const 4096, end
	data = name(data, "hello")
	data = append(data, 0, 0x41, 0x90, 0x20, 0x0b)
	data = name(data, "world!!")
	m = append(m, sec(secData, data)...)
	m = append(m, sec(secCustom, name(nil, "producers"))...)
	if withNames {
		var fn []byte
		fn = uleb(fn, 3)
		fn = name(uleb(fn, 2), "main.main")
		fn = name(uleb(fn, 3), "github.com_maxence_charriere_go_app_v10_pkg_app.__Compo_.Render")
		fn = name(uleb(fn, 4), "type_.eq.cartsync_shared_cart.Line")
		ns := name(nil, "name")
		ns = append(ns, sec(0, name(nil, "module"))...) // module name subsection, skipped
		ns = append(ns, sec(1, fn)...)
		m = append(m, sec(secCustom, ns)...)
	}
	return m
}

func TestParseModule(t *testing.T) {
	b := tinyModule(true)
	m, err := parseModule(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != len(b) || m.Imports != 2 || !m.HasNames {
		t.Errorf("size %d imports %d names %v, want %d 2 true", m.Size, m.Imports, m.HasNames, len(b))
	}
	want := []function{
		{Index: 2, Name: "main.main", Size: 3},
		{Index: 3, Name: "github.com_maxence_charriere_go_app_v10_pkg_app.__Compo_.Render", Size: 4},
		{Index: 4, Name: "type_.eq.cartsync_shared_cart.Line", Size: 200},
	}
	if len(m.Funcs) != len(want) {
		t.Fatalf("got %d functions, want %d", len(m.Funcs), len(want))
	}
	for i, w := range want {
		got := m.Funcs[i]
		if got.Index != w.Index || got.Name != w.Name || got.Size != w.Size {
			t.Errorf("function %d: got %+v, want %+v", i, got, w)
		}
		if b[got.Offset] != byte(w.Size-1) && w.Size < 128 {
			t.Errorf("function %d: offset %d does not point at its size", i, got.Offset)
		}
	}
	if m.DataSegs != 2 || m.DataBytes != len("hello")+len("world!!") {
		t.Errorf("data: %d segments, %d bytes; want 2, 12", m.DataSegs, m.DataBytes)
	}
	if len(m.Segments) != 2 || m.Segments[0].Addr != 4096 || m.Segments[1].Addr != 4112 {
		t.Fatalf("segments %+v, want them at 4096 and 4112", m.Segments)
	}
	mem := memoryImage(m, b)
	if len(mem) != 4112+7 || string(mem[4096:4101]) != "hello" || string(mem[4112:]) != "world!!" {
		t.Errorf("memory image of %d bytes: %q ... %q", len(mem), mem[4096:min(len(mem), 4101)], mem[min(len(mem), 4112):])
	}
	if parts := pclntabParts(mem); parts != nil {
		t.Errorf("found a pclntab in a module without one: %+v", parts)
	}
	total := len(wasmHeader)
	for _, s := range m.Sections {
		if b[s.Offset] != s.ID {
			t.Errorf("section %d %q: offset %d holds %d", s.ID, s.Name, s.Offset, b[s.Offset])
		}
		total += s.Size
	}
	if total != len(b) {
		t.Errorf("sections add up to %d bytes, the file has %d", total, len(b))
	}
	if got := m.section(secCustom, "producers"); got != 12 {
		t.Errorf("producers section: %d bytes, want 12", got)
	}
	stripped, err := parseModule(tinyModule(false))
	if err != nil {
		t.Fatal(err)
	}
	if stripped.HasNames || stripped.Funcs[0].Name != "" || stripped.section(secCode, "") != m.section(secCode, "") {
		t.Errorf("without a name section: names %v, first name %q", stripped.HasNames, stripped.Funcs[0].Name)
	}
}

func TestParseModuleRefusesMalformed(t *testing.T) {
	good := tinyModule(true)
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrNotWasm},
		{"ELF", []byte("\x7fELF\x02\x01\x01\x00"), ErrNotWasm},
		{"version 2", []byte{0, 'a', 's', 'm', 2, 0, 0, 0}, ErrNotWasm},
		{"cut in a section", good[:len(good)-5], ErrTruncated},
		{"section longer than the file", append(append([]byte{}, wasmHeader...), 1, 0xff, 0xff, 0x03), ErrTruncated},
		{"size over 32 bits", append(append([]byte{}, wasmHeader...), 1, 0xff, 0xff, 0xff, 0xff, 0x7f), ErrTruncated},
		{"body size past its section", append(append([]byte{}, wasmHeader...), sec(secCode, []byte{1, 9, 0})...), ErrTruncated},
		{"unknown import kind", append(append([]byte{}, wasmHeader...), sec(secImport, append(name(name([]byte{1}, "m"), "n"), 7))...), ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := parseModule(tt.b)
			var fe *FormatError
			if !errors.Is(err, tt.want) || !errors.As(err, &fe) {
				t.Fatalf("got %v, %v; want a *FormatError wrapping %v", m, err, tt.want)
			}
			if !strings.Contains(err.Error(), "at byte") {
				t.Errorf("error %q does not say where", err)
			}
		})
	}
}

func TestPackageOf(t *testing.T) {
	pkgs := []pkgInfo{
		{Path: "runtime", Name: "runtime", Standard: true},
		{Path: "net/http", Name: "http", Standard: true},
		{Path: "net/http/internal", Name: "internal", Standard: true},
		{Path: "cartsync/app", Name: "main", Module: "cartsync", Main: true},
		{Path: "cartsync/app/widget", Name: "widget", Module: "cartsync", Main: true},
		{Path: "cartsync/shared/cart", Name: "cart", Module: "cartsync", Main: true},
		{Path: "github.com/maxence-charriere/go-app/v10/pkg/app", Name: "app", Module: "github.com/maxence-charriere/go-app/v10"},
		{Path: "github.com/coder/websocket", Name: "websocket", Module: "github.com/coder/websocket"},
	}
	a := newAttributor(pkgs)
	tests := []struct {
		sym, pkg, group string
	}{
		{"runtime.mallocgc", "runtime", groupStd},
		{"net_http.__Client_.do", "net/http", groupStd},
		{"net_http_internal.NewChunkedReader", "net/http/internal", groupStd},
		{"main.main", "cartsync/app", groupProject},
		{"cartsync_app_widget.__Widget_.Render", "cartsync/app/widget", groupProject},
		{"cartsync_app_widget.Routes.func1", "cartsync/app/widget", groupProject},
		{"type_.eq.cartsync_shared_cart.Line", "cartsync/shared/cart", groupProject},
		{"github.com_maxence_charriere_go_app_v10_pkg_app.__engineX_.Navigate", "github.com/maxence-charriere/go-app/v10/pkg/app", groupGoApp},
		{"github.com_coder_websocket.__Conn_.Read", "github.com/coder/websocket", groupOther},
		{"type_.eq._2_interface____", pkgGenerated, groupStd},
		{"go_buildid", pkgGenerated, groupStd},
		{"wasm_export_run", pkgRuntimeAs, groupStd},
		{"", pkgUnnamed, groupStd},
	}
	for _, tt := range tests {
		p := a.packageOf(tt.sym)
		if p.Path != tt.pkg || p.group() != tt.group {
			t.Errorf("packageOf(%q) = %s (%s), want %s (%s)", tt.sym, p.Path, p.group(), tt.pkg, tt.group)
		}
	}
}

func TestMangleMatchesTheLinker(t *testing.T) {
	// cmd/link/internal/wasm replaces [^\w.] with '_'.
	for in, want := range map[string]string{
		"github.com/maxence-charriere/go-app/v10/pkg/app.(*Compo).Render": "github.com_maxence_charriere_go_app_v10_pkg_app.__Compo_.Render",
		"slices.SortFunc[go.shape.string]":                                "slices.SortFunc_go.shape.string_",
		"runtime.main_main·f":                                             "runtime.main_main_f",
	} {
		if got := mangle(in); got != want {
			t.Errorf("mangle(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReachChain(t *testing.T) {
	dump := `# cartsync/app
_ -> _rt0_wasm_js
_ -> go:main.inittasks
_rt0_wasm_js -> main.main
go:main.inittasks -> net/http..inittask
net/http..inittask -> net/http.init
main.main -> cartsync/shared/syncclient.(*Engine).Checkout
cartsync/shared/syncclient.(*Engine).Checkout -> net/http.(*Client).do
net/http.(*Client).do -> type:*net/http.Transport <UsedInIface>
type:*net/http.Transport <UsedInIface> -> net/http.(*Transport).RoundTrip
main.main -> net/http.(*Client).do
`
	tests := []struct {
		target string
		want   []string
	}{
		{"net/http", []string{"_", "_rt0_wasm_js", "main.main", "cartsync/shared/syncclient.(*Engine).Checkout", "net/http.(*Client).do"}},
		{"net/http.(*Transport)", []string{"_", "_rt0_wasm_js", "main.main", "cartsync/shared/syncclient.(*Engine).Checkout", "net/http.(*Client).do", "type:*net/http.Transport", "net/http.(*Transport).RoundTrip"}},
	}
	for _, tt := range tests {
		got, err := reachChain(strings.NewReader(dump), tt.target)
		if err != nil || strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("reachChain(%s) = %q, %v; want %q", tt.target, got, err, tt.want)
		}
	}
	if _, err := reachChain(strings.NewReader(dump), "crypto/tls"); !errors.Is(err, ErrNotLinked) {
		t.Errorf("crypto/tls: got %v, want ErrNotLinked", err)
	}
}

func TestParsePackageList(t *testing.T) {
	out := "runtime\truntime\ttrue\ncartsync/app\tmain\tfalse\tcartsync\ttrue\ngithub.com/google/uuid\tuuid\tfalse\tgithub.com/google/uuid\tfalse\n"
	pkgs, err := parsePackageList([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	want := []pkgInfo{
		{Path: "runtime", Name: "runtime", Standard: true},
		{Path: "cartsync/app", Name: "main", Module: "cartsync", Main: true},
		{Path: "github.com/google/uuid", Name: "uuid", Module: "github.com/google/uuid"},
	}
	if len(pkgs) != len(want) {
		t.Fatalf("got %d packages, want %d", len(pkgs), len(want))
	}
	for i := range want {
		if pkgs[i] != want[i] {
			t.Errorf("package %d: got %+v, want %+v", i, pkgs[i], want[i])
		}
	}
	for _, bad := range []string{"", "one\ttwo\n"} {
		if _, err := parsePackageList([]byte(bad)); !errors.Is(err, ErrPackageList) {
			t.Errorf("parsePackageList(%q): got %v, want ErrPackageList", bad, err)
		}
	}
}
