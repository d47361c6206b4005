package webui

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cartsync/cartsync/shared/cart"
)

func TestSeedDemoCatalogSendsValidItems(t *testing.T) {
	f := newFakeCartServer(t)
	if err := SeedDemoCatalog(context.Background(), f.srv.URL, testAPIKey, "http://127.0.0.1:8081/"); err != nil {
		t.Fatal(err)
	}
	calls := f.takeCalls()
	assertKey(t, calls)
	if got := callNames(calls); !slices.Equal(got, []string{"PUT /v1/backend/catalog/items"}) {
		t.Fatalf("calls = %q, want one catalog upload", got)
	}
	var put struct {
		Items []cart.Item `json:"items"`
	}
	if err := json.Unmarshal([]byte(calls[0].Body), &put); err != nil {
		t.Fatal(err)
	}
	low, perOrder := 0, 0
	for _, it := range put.Items {
		if e := cart.ValidateItem(&it, cart.DefaultLimits); e != nil {
			t.Errorf("%s: %v", it.SKU, e)
		}
		if it.Currency != "EUR" || !it.Sellable {
			t.Errorf("%s: %s, sellable %v; want EUR and sellable", it.SKU, it.Currency, it.Sellable)
		}
		if rest, ok := strings.CutPrefix(it.Image, "http://127.0.0.1:8081/"); !ok || strings.HasPrefix(rest, "/") || !strings.HasSuffix(rest, ".svg") {
			t.Errorf("%s: image %q, want under the demo's URL", it.SKU, it.Image)
		}
		if it.Stock != nil && *it.Stock <= 3 {
			low++
		}
		if it.MaxPerOrder != nil && *it.MaxPerOrder == 2 {
			perOrder++
		}
	}
	if low < 2 || perOrder != 1 {
		t.Errorf("%d items with a stock of 3 or less and %d with at most 2 per order; want some and one", low, perOrder)
	}
}

// TestDemoCatalogIsTheShopPage checks the catalog against the products of
// assets/demo/index.html: the same SKUs, names and prices, so that adding from
// the page raises no price notice.
func TestDemoCatalogIsTheShopPage(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "assets", "demo", "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	attr := func(button, name string) string {
		m := regexp.MustCompile(`data-cartsync-` + name + `="([^"]*)"`).FindStringSubmatch(button)
		if m == nil {
			return ""
		}
		return m[1]
	}
	page := map[string]cart.Item{}
	for _, button := range regexp.MustCompile(`(?s)<button[^>]*data-cartsync-add[^>]*>`).FindAllString(string(b), -1) {
		price, _ := strconv.ParseInt(attr(button, "price"), 10, 64)
		page[attr(button, "add")] = cart.Item{SKU: attr(button, "add"), Name: attr(button, "name"), Price: price, Currency: attr(button, "currency")}
	}
	items := demoCatalog("http://demo.example")
	if len(page) != len(items) {
		t.Errorf("the page sells %d products, the catalog has %d", len(page), len(items))
	}
	for _, it := range items {
		p, ok := page[it.SKU]
		if !ok {
			t.Errorf("%s is in the catalog, not on the page", it.SKU)
			continue
		}
		if p.Name != it.Name || p.Price != it.Price || p.Currency != it.Currency {
			t.Errorf("%s: page says %q %d %s, catalog %q %d %s", it.SKU, p.Name, p.Price, p.Currency, it.Name, it.Price, it.Currency)
		}
	}
}

func TestSeedDemoCatalogWaitsForTheCartServer(t *testing.T) {
	f := newFakeCartServer(t)
	var tries atomic.Int32
	f.fail = func(*http.Request) (int, bool) {
		return http.StatusServiceUnavailable, tries.Add(1) <= 2
	}
	if err := SeedDemoCatalog(context.Background(), f.srv.URL, testAPIKey, "http://127.0.0.1:8081"); err != nil {
		t.Fatal(err)
	}
	if got := len(f.takeCalls()); got != 3 {
		t.Errorf("%d uploads, want 3 (two refused while starting, then one stored)", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.items) != 6 {
		t.Errorf("%d items stored, want 6", len(f.items))
	}
}

func TestSeedDemoCatalogStopsAtARefusal(t *testing.T) {
	f := newFakeCartServer(t)
	err := SeedDemoCatalog(context.Background(), f.srv.URL, "not-the-key-0123456789abcdef012345", "")
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("seed with a wrong key: %v, want the 401", err)
	}
	if got := len(f.takeCalls()); got != 1 {
		t.Errorf("%d uploads, want 1: a refused key is not retried", got)
	}
}

func TestSeedDemoCatalogEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := SeedDemoCatalog(ctx, "http://127.0.0.1:1", testAPIKey, "")
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("seed with an ended context: %v", err)
	}
}

func TestAdminListsTheCatalog(t *testing.T) {
	f := newFakeCartServer(t)
	f.items = demoCatalog("http://demo.example")
	code, body := call(t, newTestDemo(t, f, ""), "GET", "/demo/admin/items", "")
	var list catalogList
	if err := json.Unmarshal([]byte(body), &list); err != nil || code != http.StatusOK {
		t.Fatalf("list = %d %s", code, body)
	}
	// The fake pages two at a time: all six are there.
	if len(list.Items) != 6 {
		t.Errorf("listed %d items, want 6", len(list.Items))
	}
	assertKey(t, f.takeCalls())
}

func TestAdminChangeSendsOneItem(t *testing.T) {
	n := func(v int) *int { return &v }
	for _, tc := range []struct {
		name   string
		change string
		want   func(it *cart.Item)
	}{
		{"price", `{"sku":"MUG-01","price":1650}`, func(it *cart.Item) { it.Price = 1650 }},
		{"stock", `{"sku":"MUG-01","stock":1}`, func(it *cart.Item) { it.Stock = n(1) }},
		{"no stock limit", `{"sku":"MUG-01","stock":null}`, func(it *cart.Item) { it.Stock = nil }},
		{"withdrawn", `{"sku":"MUG-01","sellable":false}`, func(it *cart.Item) { it.Sellable = false }},
		{"all three", `{"sku":"MUG-01","price":999,"stock":0,"sellable":true}`, func(it *cart.Item) { it.Price, it.Stock = 999, n(0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCartServer(t)
			f.items = demoCatalog("http://demo.example")
			code, body := call(t, newTestDemo(t, f, ""), "POST", "/demo/admin/items", tc.change)
			if code != http.StatusOK {
				t.Fatalf("change = %d %s", code, body)
			}
			calls := f.takeCalls()
			assertKey(t, calls)
			last := calls[len(calls)-1]
			if last.Method != "PUT" || last.Path != "/v1/backend/catalog/items" {
				t.Fatalf("last call %s, want the catalog upload", last)
			}
			var put struct{ Items []cart.Item }
			if err := json.Unmarshal([]byte(last.Body), &put); err != nil {
				t.Fatal(err)
			}
			want := demoCatalog("http://demo.example")[1] // MUG-01
			tc.want(&want)
			if len(put.Items) != 1 || !sameItem(put.Items[0], want) {
				t.Errorf("uploaded %s\nwant %+v", last.Body, want)
			}
		})
	}
}

func sameItem(a, b cart.Item) bool {
	ia, _ := json.Marshal(a)
	ib, _ := json.Marshal(b)
	return string(ia) == string(ib)
}

func TestAdminChangeRefusesBadChanges(t *testing.T) {
	for _, tc := range []struct {
		name, change string
		wantCode     int
	}{
		{"unknown SKU", `{"sku":"NOPE","price":100}`, http.StatusNotFound},
		{"no SKU", `{"price":100}`, http.StatusBadRequest},
		{"zero price", `{"sku":"MUG-01","price":0}`, http.StatusBadRequest},
		{"negative stock", `{"sku":"MUG-01","stock":-1}`, http.StatusBadRequest},
		{"stock as text", `{"sku":"MUG-01","stock":"3"}`, http.StatusBadRequest},
		{"unknown field", `{"sku":"MUG-01","name":"Cup"}`, http.StatusBadRequest},
		{"price past the limit", `{"sku":"MUG-01","price":100000000001}`, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeCartServer(t)
			f.items = demoCatalog("http://demo.example")
			code, body := call(t, newTestDemo(t, f, ""), "POST", "/demo/admin/items", tc.change)
			if code != tc.wantCode {
				t.Errorf("change %s = %d %s, want %d", tc.change, code, body, tc.wantCode)
			}
			for _, c := range f.takeCalls() {
				if c.Method == "PUT" {
					t.Errorf("a refused change was uploaded: %s", c.Body)
				}
			}
		})
	}
}
