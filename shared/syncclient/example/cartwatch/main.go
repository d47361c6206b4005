// Command cartwatch is a native client of a cartsync server in a few dozen
// lines, built from a Go module of its own on the client engine
// (github.com/cartsync/cartsync/shared/syncclient), as a native app would
// use it. It keeps its device token in a file, so that every run is the
// same device and the same guest cart; it adds to the cart if asked, and
// prints the cart whenever it changes, here or on any other device of the
// cart, until interrupted.
//
//	cartwatch -server http://127.0.0.1:8080 -add TEA -quantity 2
//	cartwatch -server http://127.0.0.1:8080 -add TEA -once   # add, wait for the ack, print, exit
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/cartsync/cartsync/shared/syncclient"
)

func main() {
	server := flag.String("server", "http://127.0.0.1:8080", "the cart server's base URL")
	tokenFile := flag.String("token-file", "cartwatch.token", "where the device token is kept between runs")
	sku := flag.String("add", "", "a SKU to add to the cart")
	qty := flag.Int("quantity", 1, "how many of -add")
	once := flag.Bool("once", false, "exit once the add is acknowledged (or the cart is loaded), after printing the cart")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *server, *tokenFile, *sku, *qty, *once); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "cartwatch:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, server, tokenFile, sku string, qty int, once bool) error {
	// A native app keeps the engine's storage on disk; this example keeps
	// only the device token and starts from the server's cart each time.
	st := syncclient.NewMemStorage()
	if b, err := os.ReadFile(tokenFile); err == nil {
		if _, err := st.SwapDeviceToken(ctx, "", strings.TrimSpace(string(b))); err != nil {
			return err
		}
	}
	var shown uint64 // the version printed last
	e, err := syncclient.New(syncclient.Config{
		Storage: st,
		BaseURL: server,
		Dial:    syncclient.WebsocketDialer("ws" + strings.TrimPrefix(server, "http") + "/v1/sync"),
		OnChange: func(s syncclient.State) {
			// Calls come one at a time: shown needs no lock.
			if !once && s.Confirmed != shown && s.Pending == 0 {
				shown = s.Confirmed
				printCart(s)
			}
		},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	if sku != "" {
		if err := e.Add(ctx, sku, nil, qty, nil); err != nil {
			return err
		}
	}
	// Flush waits until everything queued is acknowledged; then wait
	// for the server's cart (with nothing queued, Flush does not wait).
	if err := e.Flush(ctx); err != nil {
		return err
	}
	synced := make(chan struct{})
	go func() {
		defer close(synced)
		for e.Snapshot().Status != syncclient.Synced && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	select {
	case <-synced:
	case err := <-done:
		return err
	}
	if stored, err := st.Load(ctx); err == nil && stored.DeviceToken != "" {
		if err := os.WriteFile(tokenFile, []byte(stored.DeviceToken+"\n"), 0o600); err != nil {
			return err
		}
	}
	if once {
		s := e.Snapshot()
		fmt.Printf("acknowledged: cart at version %d\n", s.Confirmed)
		printCart(s)
		return nil
	}
	return <-done
}

// printCart prints the cart as one line per product.
func printCart(s syncclient.State) {
	if s.Cart == nil {
		return
	}
	fmt.Printf("cart %s, version %d, %s, %d pending:\n", s.Cart.ID, s.Confirmed, s.Status, s.Pending)
	for _, l := range s.Cart.Lines {
		fmt.Printf("  %s x %d\n", l.SKU, l.Quantity)
	}
}
