package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// browser is one Chromium for the whole run; each cold load gets a fresh
// browser context of it.
type browser struct {
	ctx    context.Context
	close  func()
	frames bool // keep the long animation frames (-tasks)
}

func startBrowser(ctx context.Context, cfg config, e env) (*browser, error) {
	opts := append([]chromedp.ExecAllocatorOption{}, chromedp.DefaultExecAllocatorOptions[:]...)
	if cfg.chromium != "" {
		opts = append(opts, chromedp.ExecPath(cfg.chromium))
	}
	var secure []string
	for site := range e.shops {
		secure = append(secure, e.shops[site], e.carts[site])
	}
	opts = append(opts,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("host-resolver-rules", fmt.Sprintf("MAP %s 127.0.0.1, MAP %s 127.0.0.1, MAP %s 127.0.0.1", cartHost, sameSiteShop, crossSiteShop)),
		chromedp.Flag("unsafely-treat-insecure-origin-as-secure", strings.Join(secure, ",")),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancel := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(bctx); err != nil {
		cancel()
		cancelAlloc()
		return nil, fmt.Errorf("start Chromium: %w", err)
	}
	return &browser{ctx: bctx, close: func() { cancel(); cancelAlloc() }, frames: cfg.tasks}, nil
}

// instrument runs first in every document of the tab: it keeps the host
// page's long tasks and its largest contentful paint.
const instrument = `if (window === window.top) {
  const b = window.__bench = { long: [], lcp: 0 };
  try {
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) b.long.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) { b.noLongtask = String(e); }
  try {
    new PerformanceObserver((l) => { for (const e of l.getEntries()) b.lcp = e.startTime; })
      .observe({ type: 'largest-contentful-paint', buffered: true });
  } catch (e) { b.noLCP = String(e); }
}`

// instrumentFrames runs after instrument with -tasks: it keeps the host
// page's long animation frames with the scripts that ran in them (which
// script or callback held the thread). Without -tasks the page runs no
// observer of its own beyond what the figures need.
const instrumentFrames = `if (window === window.top) {
  const b = window.__bench;
  b.frames = [];
  try {
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) {
        b.frames.push({ start: e.startTime, duration: e.duration, scripts: e.scripts.map((s) => ({
          invoker: s.invoker, source: s.sourceURL ? new URL(s.sourceURL).pathname : '', duration: s.duration })) });
      }
    }).observe({ type: 'long-animation-frame', buffered: true });
  } catch (e) { b.noLoAF = String(e); }
}`

// sample is one load's figures, in milliseconds from navigation start.
type sample struct {
	TBT   float64 `json:"tbt"`
	Long  float64 `json:"long"`
	Tasks int     `json:"tasks"`
	LCP   float64 `json:"lcp"`
	Load  float64 `json:"load"`
	Shell float64 `json:"shell"` // -1: none
	Start float64 `json:"start"`
	Ready float64 `json:"ready"`
	// LongTasks are the long tasks as [start, duration] pairs.
	LongTasks [][2]float64 `json:"longTasks"`
	// Frames are the long animation frames (50 ms or more, the work of a
	// task and the rendering after it) with the scripts that ran in them;
	// only with -tasks.
	Frames  []longFrame `json:"frames"`
	OwnProc bool        `json:"-"` // the widget's frame ran in a process of its own
}

// longFrame is a long animation frame (PerformanceLongAnimationFrameTiming).
type longFrame struct {
	Start    float64 `json:"start"`
	Duration float64 `json:"duration"`
	Scripts  []struct {
		Invoker  string  `json:"invoker"`  // the script's URL, or what called it: IdleRequestCallback, DOMWindow.onmessage, ...
		Source   string  `json:"source"`   // the path of the script's file
		Duration float64 `json:"duration"` // ms
	} `json:"scripts"`
}

// String is the frame's start and duration and its scripts' durations, in
// milliseconds.
func (f longFrame) String() string {
	if len(f.Scripts) == 0 {
		return fmt.Sprintf("at %.0f, %.0f ms: no script (style, layout, paint, or the browser's own work)", f.Start, f.Duration)
	}
	scripts := make([]string, len(f.Scripts))
	for i, s := range f.Scripts {
		who := s.Invoker
		if s.Source != "" && !strings.HasSuffix(s.Invoker, s.Source) {
			who += " (" + s.Source + ")"
		}
		scripts[i] = fmt.Sprintf("%s %.0f ms", who, s.Duration)
	}
	return fmt.Sprintf("at %.0f, %.0f ms: %s", f.Start, f.Duration, strings.Join(scripts, ", "))
}

const collect = `(() => {
  const b = window.__bench, nav = performance.getEntriesByType('navigation')[0];
  const m = (n) => { const e = performance.getEntriesByName(n)[0]; return e ? e.startTime : -1; };
  let tbt = 0, long = 0;
  for (const t of b.long) {
    tbt += Math.max(0, t.duration - 50);
    long += t.duration;
  }
  return { tbt, long, tasks: b.long.length, lcp: b.lcp, load: nav.loadEventStart,
    longTasks: b.long.map((t) => [Math.round(t.start), Math.round(t.duration)]), frames: b.frames,
    shell: m('cartsync:shell'), start: m('cartsync:start'), ready: m('cartsync:ready') };
})()`

const waitReadyJS = `new Promise((resolve) => {
  const go = () => resolve(window.cartsync.ready.then(() => true));
  if (window.cartsync) go(); else window.addEventListener('cartsync:load', go, { once: true });
})`

const quietJS = `(() => {
  const b = window.__bench;
  return { now: performance.now(), last: b.long.reduce((m, t) => Math.max(m, t.start + t.duration), 0) };
})()`

// newTab opens a tab in a fresh browser context, throttled to rate.
func newTab(b *browser, rate float64) (context.Context, context.CancelFunc, error) {
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: instrument})
	if err == nil && b.frames {
		_, err = chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: instrumentFrames})
	}
	if err == nil {
		_, err = chromedp.Call(ctx, emulation.SetCPUThrottlingRate, emulation.SetCPUThrottlingRateParams{Rate: rate})
	}
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("open a tab: %w", err)
	}
	return ctx, cancel, nil
}

// load navigates the tab to url and waits until it is quiet: its load
// event, the widget ready (withCart: a page with the cart), then quiet
// without a long task.
func load(ctx context.Context, url string, withCart bool, quiet time.Duration, cart string) (sample, error) {
	var s sample
	lctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(lctx, chromedp.Navigate(url)); err != nil {
		return s, fmt.Errorf("load %s: %w", url, err)
	}
	if withCart {
		if _, err := chromedp.Run(lctx, chromedp.Evaluate[bool](waitReadyJS, chromedp.EvalAwaitPromise)); err != nil {
			return s, fmt.Errorf("%s: cartsync.ready: %w", url, err)
		}
	}
	settled := time.Now()
	for {
		q, err := chromedp.Run(lctx, chromedp.Evaluate[struct{ Now, Last float64 }](quietJS))
		if err != nil {
			return s, fmt.Errorf("%s: %w", url, err)
		}
		if time.Since(settled) >= quiet && q.Now-q.Last >= float64(quiet.Milliseconds()) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	s, err := chromedp.Run(lctx, chromedp.Evaluate[sample](collect))
	if err != nil {
		return s, fmt.Errorf("%s: collect: %w", url, err)
	}
	if withCart && cart != "" {
		own, err := frameHasOwnProcess(lctx, cart)
		if err != nil {
			return s, err
		}
		s.OwnProc = own
	}
	return s, nil
}

// frameHasOwnProcess reports whether Chromium put the widget's frame of
// this tab's browser context in a process of its own (an out-of-process
// iframe is a target of its own).
func frameHasOwnProcess(ctx context.Context, cart string) (bool, error) {
	c := chromedp.FromContext(ctx)
	res, err := chromedp.CallBrowser(ctx, target.GetTargets, target.GetTargetsParams{})
	if err != nil {
		return false, fmt.Errorf("list targets: %w", err)
	}
	for _, t := range res.TargetInfos {
		if t.Type == "iframe" && strings.HasPrefix(t.URL, cart+"/") && t.BrowserContextID == c.BrowserContextID {
			return true, nil
		}
	}
	return false, nil
}

// row is the medians of one page's loads of one kind.
type row struct {
	site, kind, page string
	rate             float64
	samples          []sample
}

// addRow is the add() latencies of one site and CPU rate, and those of
// cart() (the bridge's round trip without storage) for comparison.
type addRow struct {
	site    string
	rate    float64
	ms      []float64 // add() back to back
	cartMs  []float64
	pacedMs []float64 // add() after a pause
}

func measureSite(ctx context.Context, cfg config, b *browser, e env, site string, rate float64) ([]row, addRow, error) {
	shop := e.shops[site]
	pages := []string{"plain", "embed", "loader"}
	res := map[string][]sample{}
	for i := range cfg.runs {
		// Rotated, so that each page follows each other page as often.
		order := append(slices.Clone(pages[i%len(pages):]), pages[:i%len(pages)]...)
		for _, p := range order {
			tab, cancel, err := newTab(b, rate)
			if err != nil {
				return nil, addRow{}, err
			}
			url := shop + "/" + p + ".html"
			cold, err := load(tab, url, p != "plain", cfg.quiet, e.carts[site])
			if err == nil {
				res["cold "+p] = append(res["cold "+p], cold)
				var warm sample
				warm, err = load(tab, url, p != "plain", cfg.quiet, e.carts[site])
				res["warm "+p] = append(res["warm "+p], warm)
				if cfg.tasks {
					for _, s := range []struct {
						kind string
						s    sample
					}{{"cold", cold}, {"warm", warm}} {
						fmt.Fprintf(os.Stderr, "  %s %s: load %.0f, shell %.0f, frame %.0f, ready %.0f; long tasks [start duration]: %v\n",
							s.kind, p, s.s.Load, s.s.Shell, s.s.Start, s.s.Ready, s.s.LongTasks)
						for _, f := range s.s.Frames {
							fmt.Fprintf(os.Stderr, "    long animation frame %s\n", f)
						}
					}
				}
			}
			cancel()
			if err != nil {
				return nil, addRow{}, err
			}
		}
		fmt.Fprintf(os.Stderr, "%s-site CPU %gx: run %d/%d\n", site, rate, i+1, cfg.runs)
	}
	var rows []row
	for _, kind := range []string{"cold", "warm"} {
		for _, p := range pages {
			rows = append(rows, row{site: site, kind: kind, page: p, rate: rate, samples: res[kind+" "+p]})
		}
	}
	a := addRow{site: site, rate: rate}
	if cfg.adds == 0 {
		return rows, a, nil
	}
	tab, cancel, err := newTab(b, rate)
	if err != nil {
		return nil, a, err
	}
	defer cancel()
	url := shop + "/embed.html"
	for range 2 { // cold, then warm: the adds run on a returning shopper's page
		if _, err := load(tab, url, true, cfg.quiet, e.carts[site]); err != nil {
			return nil, a, err
		}
	}
	actx, acancel := context.WithTimeout(tab, 5*time.Minute+time.Duration(cfg.adds)*cfg.addGap)
	defer acancel()
	const add = "cartsync.add('BENCH-' + (i % 10), 1)"
	for _, c := range []struct {
		call  string
		gapMs int64 // the pause before each call
		out   *[]float64
	}{{add, 0, &a.ms}, {"cartsync.cart()", 0, &a.cartMs}, {add, cfg.addGap.Milliseconds(), &a.pacedMs}} {
		if c.out == &a.pacedMs && cfg.addGap == 0 {
			continue
		}
		// Each series starts once the edits before it are synced.
		*c.out, err = chromedp.Run(actx, chromedp.Evaluate[[]float64](fmt.Sprintf(`(async () => {
			const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
			while ((await cartsync.cart()).pending > 0) await sleep(50);
			const out = [];
			for (let i = 0; i < %d; i++) {
				if (%d > 0) await sleep(%d);
				const t = performance.now();
				await %s;
				out.push(performance.now() - t);
			}
			return out;
		})()`, cfg.adds, c.gapMs, c.gapMs, c.call), chromedp.EvalAwaitPromise))
		if err != nil {
			return nil, a, fmt.Errorf("time %s (%d ms apart): %w", c.call, c.gapMs, err)
		}
	}
	return rows, a, nil
}

func median(xs []float64) float64 { return percentile(xs, 50) }

// percentile is the nearest-rank percentile p of xs.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func field(ss []sample, f func(sample) float64) []float64 {
	var out []float64
	for _, s := range ss {
		if v := f(s); v >= 0 {
			out = append(out, v)
		}
	}
	return out
}

func ms(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

func printLoads(w io.Writer, rows []row) {
	fmt.Fprintln(w, "Medians, ms from navigation start (TBT and long tasks: sums over the load, of the host page's main thread)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| site | CPU | load | page | n | TBT | long tasks | LCP | load event | shell | frame created | ready | frame process |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rows {
		med := func(f func(sample) float64) string { return ms(median(field(r.samples, f))) }
		proc := ""
		if r.page != "plain" && len(r.samples) > 0 {
			proc = "host's"
			if r.samples[0].OwnProc {
				proc = "own"
			}
		}
		fmt.Fprintf(w, "| %s | %gx | %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.site, r.rate, r.kind, r.page, len(r.samples),
			med(func(s sample) float64 { return s.TBT }), med(func(s sample) float64 { return s.Long }),
			med(func(s sample) float64 { return s.LCP }),
			med(func(s sample) float64 { return s.Load }), med(func(s sample) float64 { return s.Shell }),
			med(func(s sample) float64 { return s.Start }), med(func(s sample) float64 { return s.Ready }), proc)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Each page with the cart (embed: the script tag; loader: the loader snippet) minus the plain page")
	fmt.Fprintln(w, "(median of each): the widget's cost")
	for _, p := range rows {
		if p.page != "plain" {
			continue
		}
		for _, e := range rows {
			if e.page == "plain" || e.site != p.site || e.rate != p.rate || e.kind != p.kind {
				continue
			}
			d := func(f func(sample) float64) float64 { return median(field(e.samples, f)) - median(field(p.samples, f)) }
			fmt.Fprintf(w, "  %s-site %gx %s, %s: TBT %+.0f ms, LCP %+.0f ms, load %+.0f ms, shell at %s ms\n", p.site, p.rate, p.kind, e.page,
				d(func(s sample) float64 { return s.TBT }), d(func(s sample) float64 { return s.LCP }), d(func(s sample) float64 { return s.Load }),
				ms(median(field(e.samples, func(s sample) float64 { return s.Shell }))))
		}
	}
}

func printAdds(w io.Writer, adds []addRow, n int, gap time.Duration) {
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "cartsync.add() from call to resolution (stored in IndexedDB), %d sequential adds on a warm page,\n", n)
	fmt.Fprintf(w, "then %d cartsync.cart() (the bridge's round trip, no storage)", n)
	if gap > 0 {
		fmt.Fprintf(w, ", then %d adds each %v after the one before resolved", n, gap)
	}
	fmt.Fprint(w, ", ms\n\n")
	fmt.Fprintln(w, "| site | CPU | call | n | p50 | p95 | p99 | max |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, a := range adds {
		for _, c := range []struct {
			call string
			ms   []float64
		}{{"add()", a.ms}, {"cart()", a.cartMs}, {fmt.Sprintf("add() after %v", gap), a.pacedMs}} {
			if len(c.ms) == 0 {
				continue
			}
			fmt.Fprintf(w, "| %s | %gx | %s | %d | %.1f | %.1f | %.1f | %.1f |\n", a.site, a.rate, c.call, len(c.ms),
				percentile(c.ms, 50), percentile(c.ms, 95), percentile(c.ms, 99), percentile(c.ms, 100))
		}
	}
}
