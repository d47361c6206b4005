package main

// The server binary as the scenarios that start it themselves (restart,
// idle, scale) run it: started, stopped, its log read, its CPU sampled and
// profiled.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is one run of the server binary.
type server struct {
	cmd *exec.Cmd
	log string
}

func startServer(ctx context.Context, rc restartConfig, n int) (*server, time.Time, error) {
	logPath := fmt.Sprintf("%s/server-%d.log", rc.logDir, n)
	f, err := os.Create(logPath)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	cmd := exec.Command(rc.bin, append([]string{"-addr", rc.addr}, rc.args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, time.Time{}, err
	}
	s := &server{cmd: cmd, log: logPath}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + rc.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, time.Now(), nil
			}
		}
		select {
		case <-ctx.Done():
			return s, time.Time{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return s, time.Time{}, fmt.Errorf("server %d not ready within 30s; see %s", n, logPath)
}

// kill ends the server at once if it still runs.
func (s *server) kill() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// printLogSummary prints what logSummary finds in the server's log.
func (s *server) printLogSummary() error {
	counts, timeouts, err := logSummary(s.log)
	if err != nil {
		return err
	}
	fmt.Printf("server log %s: %d warnings and errors about a timeout", s.log, timeouts)
	for k, n := range counts {
		fmt.Printf("; %s: %d", k, n)
	}
	fmt.Println()
	return nil
}

func (s *server) stop() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	return s.cmd.Wait()
}

// logSummary counts a server log's warnings and errors by message, and
// those about a timeout.
func logSummary(path string) (map[string]int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	counts := map[string]int{}
	timeouts := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Level, Msg, Err string
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || (rec.Level != "WARN" && rec.Level != "ERROR") {
			continue
		}
		counts[rec.Level+" "+rec.Msg]++
		if e := strings.ToLower(rec.Err); strings.Contains(e, "timeout") || strings.Contains(e, "deadline") {
			timeouts++
		}
	}
	return counts, timeouts, sc.Err()
}

// fetchProfile waits for the server logging to logPath to name its
// profiler and writes a 5 s CPU profile from it to path.
func fetchProfile(ctx context.Context, logPath, path string) error {
	for {
		b, _ := os.ReadFile(logPath)
		for line := range strings.Lines(string(b)) {
			var rec struct{ Msg, URL string }
			if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "profiler" {
				continue
			}
			resp, err := http.Get(rec.URL + "profile?seconds=5")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("profiler answered %s", resp.Status)
			}
			f, err := os.Create(path)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, resp.Body); err != nil {
				f.Close()
				return err
			}
			return f.Close()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// cpuSample is the machine's busy CPU time and that of the server and of
// this process, in seconds, at one moment (Linux /proc; zero elsewhere).
type cpuSample struct {
	wall               time.Time
	busy, server, self float64
	cores              int
}

// clockTick is USER_HZ, the unit of /proc's CPU times on Linux.
const clockTick = 100

func sampleCPU(serverPid int) cpuSample {
	s := cpuSample{wall: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], "cpu") && f[0] != "cpu" {
				s.cores++
			}
			if len(f) < 8 || f[0] != "cpu" {
				continue
			}
			// user nice system idle iowait irq softirq: busy is all but
			// idle and iowait.
			for i, v := range f[1:8] {
				if i == 3 || i == 4 {
					continue
				}
				n, _ := strconv.ParseFloat(v, 64)
				s.busy += n / clockTick
			}
		}
	}
	proc := func(pid string) float64 {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return 0
		}
		// Past the command name in parentheses: fields 14 and 15 are
		// utime and stime.
		rest := string(b)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 13 {
			return 0
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		return (u + st) / clockTick
	}
	s.server = proc(strconv.Itoa(serverPid))
	s.self = proc("self")
	return s
}
