// Command cartsync-hostbench measures what the cart widget costs the
// storefront page that embeds it, in headless Chromium driven with
// chromedp.
//
// It starts the cart server (-server-bin) and a storefront of its own
// serving three pages that differ only by the embed.js tag (plain: none;
// embed: an async script tag; loader: the loader snippet inline, which
// loads embed.js after the page's load event), on two sites:
// same-site (the shop at shop.example.com, the cart at cart.example.com,
// the widget's frame then shares the shop's process and main thread) and
// cross-site (the shop at shop.example.net). Chromium resolves those names
// to 127.0.0.1 (--host-resolver-rules) and treats them as secure contexts,
// so that the widget's service worker runs as it would over https.
//
// A third embed, same-oac, is same-site with the widget page served with
// Origin-Agent-Cluster: ?1, which makes Chromium give the widget a process
// of its own. That is the server's default (-origin-agent-cluster); the
// benchmark starts the server without it, so that same shows what a
// same-site embed costs without the header, and puts a proxy adding it in
// front of the cart server, on another port, for same-oac.
//
// For each site and CPU throttling rate it loads both pages, interleaved,
// -runs times cold (a fresh browser context: no cache, no storage, no
// service worker) and each time warm again (the same context, right after).
// Each load lasts until the page is quiet: its load event, the widget's
// ready event for the embed page, and then no long task for -quiet. It
// reports medians of
//
//   - TBT: the total blocking time of the host page's main thread (the sum
//     over its long tasks of their time beyond 50 ms, PerformanceObserver
//     longtask), from navigation to the end of the load; the tasks of a
//     frame that shares the host's process count, since they block it;
//   - long: the sum of those long tasks;
//   - LCP and load: largest-contentful-paint and the load event;
//   - shell: when embed.js drew its cart button; start: when it created the
//     frame; ready: when cartsync.ready resolved (User Timing marks of
//     embed.js), all from navigation start;
//
// and the latency of cartsync.add(), from the call to its resolution (the
// edit stored in IndexedDB), over -adds adds on a warm page: back to back
// (each add called as soon as the one before resolved, so that it meets
// the previous add's sync: its acknowledgement, rendering and events), and
// paced, -add-gap apart (a shopper's clicks: each add finds the widget idle).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	serverBin  string
	serverArgs string
	web        string
	runs       int
	cpu        []float64
	sites      []string
	adds       int
	addGap     time.Duration
	quiet      time.Duration
	chromium   string
	tasks      bool
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("cartsync-hostbench: ")
	var cfg config
	var cpu, sites string
	flag.StringVar(&cfg.serverBin, "server-bin", "bin/cartsync", "the cartsync binary to start")
	flag.StringVar(&cfg.serverArgs, "server-args", "", "more arguments for the cart server, space-separated")
	flag.StringVar(&cfg.web, "web", "web", "the folder of the widget's files (with app.wasm)")
	flag.IntVar(&cfg.runs, "runs", 10, "cold loads (each followed by a warm one) per page, site and CPU rate")
	flag.StringVar(&cpu, "cpu", "1,4", "CPU throttling rates, comma-separated (1 is none)")
	flag.StringVar(&sites, "sites", "same,same-oac,cross", "which embeds: same (same-site cart server), same-oac (same-site, with Origin-Agent-Cluster), cross (cross-site)")
	flag.IntVar(&cfg.adds, "adds", 300, "cartsync.add() calls timed back to back (and as many cart() calls, and as many paced adds) per site and CPU rate")
	flag.DurationVar(&cfg.addGap, "add-gap", 250*time.Millisecond, "the pause before each paced add, at least 1ms (0: no paced adds)")
	flag.DurationVar(&cfg.quiet, "quiet", time.Second, "a load ends after this long without a long task")
	flag.BoolVar(&cfg.tasks, "tasks", false, "print every load's long tasks (start and duration, ms) and long animation frames (with the scripts that ran in them) on stderr")
	flag.StringVar(&cfg.chromium, "chromium", os.Getenv("CARTSYNC_TEST_CHROMIUM"), "the Chromium to run (default: chromedp's search, $CARTSYNC_TEST_CHROMIUM)")
	flag.Parse()
	var err error
	if cfg.cpu, err = parseRates(cpu); err != nil {
		log.Fatal(err)
	}
	if cfg.sites, err = parseSites(sites); err != nil {
		log.Fatal(err)
	}
	if cfg.runs < 1 || cfg.adds < 0 || (cfg.addGap != 0 && cfg.addGap < time.Millisecond) {
		log.Fatal("-runs must be at least 1, -adds at least 0, and -add-gap 0 or at least 1ms")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatal(err)
	}
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || r < 1 || r > 20 {
			return nil, fmt.Errorf("-cpu: %q is not a rate from 1 to 20", f)
		}
		out = append(out, r)
	}
	return out, nil
}

func parseSites(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		switch f = strings.TrimSpace(f); f {
		case "same", "same-oac", "cross":
			out = append(out, f)
		default:
			return nil, fmt.Errorf("-sites: %q is not same, same-oac or cross", f)
		}
	}
	return out, nil
}

// The names Chromium maps to 127.0.0.1: example.com and example.net are
// registrable domains of the public suffix list, so cart.example.com and
// shop.example.com are one site and shop.example.net another.
const (
	cartHost      = "cart.example.com"
	sameSiteShop  = "shop.example.com"
	crossSiteShop = "shop.example.net"
)

// env is a run's origins.
type env struct {
	carts map[string]string // by site: the cart server's origin, or its proxy's
	shops map[string]string // by site
}

func run(ctx context.Context, cfg config) error {
	dir, err := os.MkdirTemp("", "cartsync-hostbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cartPort, err := freePort()
	if err != nil {
		return err
	}
	shopLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	shopPort := shopLn.Addr().(*net.TCPAddr).Port
	oacLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	cart := fmt.Sprintf("http://%s:%d", cartHost, cartPort)
	e := env{
		carts: map[string]string{
			"same":     cart,
			"same-oac": fmt.Sprintf("http://%s:%d", cartHost, oacLn.Addr().(*net.TCPAddr).Port),
			"cross":    cart,
		},
		shops: map[string]string{ // same-oac's: another port, its pages naming the proxy
			"same":  fmt.Sprintf("http://%s:%d", sameSiteShop, shopPort),
			"cross": fmt.Sprintf("http://%s:%d", crossSiteShop, shopPort),
		},
	}
	oacShopLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	loader, err := os.ReadFile(filepath.Join(cfg.web, "loader.js"))
	if err != nil {
		return fmt.Errorf("the loader snippet: %w", err)
	}
	e.shops["same-oac"] = fmt.Sprintf("http://%s:%d", sameSiteShop, oacShopLn.Addr().(*net.TCPAddr).Port)
	for _, s := range []struct {
		ln net.Listener
		h  http.Handler
	}{
		{shopLn, shopHandler(cart, string(loader))},
		{oacShopLn, shopHandler(e.carts["same-oac"], string(loader))},
		{oacLn, originKeyed(fmt.Sprintf("127.0.0.1:%d", cartPort))},
	} {
		hs := &http.Server{Handler: s.h, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(s.ln)
		defer hs.Close()
	}

	web, err := filepath.Abs(cfg.web)
	if err != nil {
		return err
	}
	// Without the header (-origin-agent-cluster=false) for same and
	// cross; the proxy adds it back for same-oac, the server's default.
	args := []string{"-addr", fmt.Sprintf("127.0.0.1:%d", cartPort), "-log-level", "error", "-data", filepath.Join(dir, "data"),
		"-origin-agent-cluster=false", "-web", web, "-allowed-origins", strings.Join([]string{e.shops["same"], e.shops["same-oac"], e.shops["cross"]}, ",")}
	args = append(args, strings.Fields(cfg.serverArgs)...)
	srv := exec.CommandContext(ctx, cfg.serverBin, args...)
	srv.Stdout, srv.Stderr = os.Stderr, os.Stderr
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start the cart server: %w", err)
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	if err := waitReady(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", cartPort)); err != nil {
		return err
	}

	b, err := startBrowser(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer b.close()
	for _, site := range cfg.sites {
		fmt.Printf("%s: shop %s, cart %s\n", site, e.shops[site], e.carts[site])
	}
	fmt.Printf("%d cold and %d warm loads per page, site and CPU rate; loads end after %v without a long task\n\n", cfg.runs, cfg.runs, cfg.quiet)

	var rows []row
	var adds []addRow
	for _, site := range cfg.sites {
		for _, rate := range cfg.cpu {
			r, a, err := measureSite(ctx, cfg, b, e, site, rate)
			if err != nil {
				return fmt.Errorf("%s-site, CPU %gx: %w", site, rate, err)
			}
			rows = append(rows, r...)
			adds = append(adds, a)
		}
	}
	printLoads(os.Stdout, rows)
	fmt.Println()
	printAdds(os.Stdout, adds, cfg.adds, cfg.addGap)
	return nil
}

// originKeyed proxies the cart server at addr, adding Origin-Agent-Cluster:
// ?1 to the widget page as webui.Config.OriginAgentCluster does.
func originKeyed(addr string) http.Handler {
	p := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	p.ModifyResponse = func(r *http.Response) error {
		if r.Request.URL.Path == "/" {
			r.Header.Set("Origin-Agent-Cluster", "?1")
		}
		return nil
	}
	return p
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("the cart server was not ready within 30 s")
}

// shopPage is the storefront: a header with the cart's mount element (its
// size reserved), a heading, text and product cards, and, for /embed.html,
// the embed.js tag, for /loader.html the loader snippet (assets/loader.js)
// instead. The text block is the page's largest contentful paint.
const shopPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Shop</title>
<style>
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; color: #1b1f24; }
header { display: flex; justify-content: space-between; align-items: center; padding: 8px 24px; background: #f4f1ea; }
#cart { min-width: 64px; min-height: 64px; }
main { max-width: 960px; margin: 0 auto; padding: 24px; }
.hero { font-size: 22px; padding: 32px; background: #e8eef7; border-radius: 12px; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 16px; margin-top: 24px; }
.card { padding: 16px; border: 1px solid #ddd; border-radius: 8px; }
</style></head>
<body>
<header><strong>Shop</strong><div id="cart"></div></header>
<main>
<h1>Organic cotton, made to last</h1>
<p class="hero">Our tees, mugs and totes are made from organic cotton and recycled ceramics by small workshops.
Every product ships in plastic-free packaging, and we repair what we sell for as long as you own it.
Free shipping from 50 euros, returns within 30 days, and a cart that keeps your picks on every device.</p>
<div class="grid">{{CARDS}}</div>
</main>
{{SCRIPT}}
</body>
</html>
`

func shopHandler(cart, loader string) http.Handler {
	var cards strings.Builder
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&cards, `<div class="card"><h2>Product %d</h2><p>A product of the shop.</p>`+
			`<button data-cartsync-add="SKU-%02d" data-cartsync-name="Product %d" data-cartsync-price="1999" data-cartsync-currency="EUR">Add to cart</button></div>`, i, i, i)
	}
	page := strings.Replace(shopPage, "{{CARDS}}", cards.String(), 1)
	plain := strings.Replace(page, "{{SCRIPT}}", "", 1)
	embed := strings.Replace(page, "{{SCRIPT}}", `<script async src="`+cart+`/embed.js" data-mount="#cart"></script>`, 1)
	snippet := strings.Replace(loader, "https://CART-SERVER", cart, 1)
	withLoader := strings.Replace(page, "{{SCRIPT}}", "<script>\n"+snippet+"</script>", 1)
	mux := http.NewServeMux()
	for path, body := range map[string]string{"/plain.html": plain, "/embed.html": embed, "/loader.html": withLoader} {
		mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			fmt.Fprint(w, body)
		})
	}
	return mux
}
