package storetest

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RedisProc is a redis-server of a test's own, for faults the shared test
// server must not suffer: paused (SIGSTOP, a Redis that hangs), resumed,
// stopped and started again on the same port.
type RedisProc struct {
	t    testing.TB
	Addr string // host:port
	cmd  *exec.Cmd
}

// StartRedis starts a private redis-server on a free loopback port, without
// persistence, stopped when the test ends. It follows the rules of RedisURL:
// without Redis tests enabled the test is skipped, or fails under CI; a
// missing redis-server binary then fails it.
func StartRedis(t testing.TB) *RedisProc {
	t.Helper()
	RedisURL(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &RedisProc{t: t, Addr: addr}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// URL is the server's redis:// URL.
func (r *RedisProc) URL() string { return "redis://" + r.Addr + "/0" }

// Start starts the server (again) on its address and waits until it answers.
func (r *RedisProc) Start() {
	r.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		r.t.Fatalf("redis-server is needed for this test: %v", err)
	}
	_, port, _ := net.SplitHostPort(r.Addr)
	r.cmd = exec.Command(bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !r.answers() {
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s did not answer", r.Addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// answers reports whether the server replies to PING.
func (r *RedisProc) answers() bool {
	c, err := net.DialTimeout("tcp", r.Addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// Pause stops the process (SIGSTOP): connections stay open and nothing
// answers, as when Redis hangs.
func (r *RedisProc) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *RedisProc) Resume() { r.signal(syscall.SIGCONT) }

func (r *RedisProc) signal(sig syscall.Signal) {
	r.t.Helper()
	if r.cmd == nil || r.cmd.Process == nil {
		r.t.Fatalf("redis-server on %s is not running", r.Addr)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("signal redis-server: %v", err)
	}
}

// Stop kills the server (resuming it first if paused) and waits for it.
func (r *RedisProc) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGCONT)
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// String names the server for messages.
func (r *RedisProc) String() string {
	pid := 0
	if r.cmd != nil && r.cmd.Process != nil {
		pid = r.cmd.Process.Pid
	}
	return fmt.Sprintf("redis-server %s (pid %s)", r.Addr, strconv.Itoa(pid))
}
