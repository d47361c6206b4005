//go:build unix

package syncserver

import "syscall"

// hasData reports whether the socket fd has something to read, or an end
// or error for the reader to find, without taking it: false only when a
// read would have to wait.
func hasData(fd uintptr) bool {
	var b [1]byte
	_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK
}
