package syncclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/coder/websocket"

	"github.com/cartsync/cartsync/shared/protocol"
)

// Conn is one connection to the sync server carrying protocol messages. Read
// and Write are each called from one goroutine at a time, possibly
// concurrently with each other; Close may be called at any time and makes
// pending calls return.
type Conn interface {
	Read(ctx context.Context) ([]byte, error)
	Write(ctx context.Context, msg []byte) error
	Close() error
}

// DialFunc opens a connection.
type DialFunc func(ctx context.Context) (Conn, error)

// ErrBinaryMessage is returned by a websocket Conn that receives a binary
// message, which is not part of the protocol.
var ErrBinaryMessage = errors.New("syncclient: binary websocket message")

// WebsocketDialer returns a DialFunc that opens a websocket to url (for
// example "wss://sync.example.com/v1/sync"). It works natively and in the
// browser.
func WebsocketDialer(url string) DialFunc {
	return func(ctx context.Context) (Conn, error) {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", url, err)
		}
		// A cart at its limits can exceed the size of a client message.
		c.SetReadLimit(protocol.MaxServerMessageBytes)
		return wsConn{c}, nil
	}
}

type wsConn struct{ c *websocket.Conn }

func (w wsConn) Read(ctx context.Context) ([]byte, error) {
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		return nil, ErrBinaryMessage
	}
	return b, nil
}

func (w wsConn) Write(ctx context.Context, msg []byte) error {
	return w.c.Write(ctx, websocket.MessageText, msg)
}

// Close drops the connection without a closing handshake: the engine closes
// a connection when it is done with it or believes it dead, and must not
// wait for a peer that may never answer.
func (w wsConn) Close() error { return w.c.CloseNow() }
