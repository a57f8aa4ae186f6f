package jssdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Script is a Node ES module to run: File or Source.
type Script struct{ name, text string }

// File is the script of that name in this package's scripts/ directory
// (e.g. "slidingsync.mjs").
func File(name string) Script { return Script{name: name} }

// Source is an ES module given as text. It runs beside the files of
// scripts/, so it can import them ("./lib.mjs") as well as the SDK
// ("matrix-js-sdk").
func Source(text string) Script { return Script{text: text} }

// Line is one line of a script's stdout: a JSON object, whose "type" field
// (if any) is in Type.
type Line struct {
	Type string
	Raw  json.RawMessage
}

// Decode unmarshals the line into v.
func (l Line) Decode(v any) error { return json.Unmarshal(l.Raw, v) }

func (l Line) String() string { return string(l.Raw) }

// Proc is a running script.
type Proc struct {
	t   testing.TB
	cmd *exec.Cmd

	mu      sync.Mutex
	lines   []Line
	bad     error         // the first stdout line that is not a JSON object
	changed chan struct{} // closed and replaced at each new line, and at exit
	stderr  bytes.Buffer
	exited  chan struct{}
	waitErr error
}

// Start runs script with node, with env added to a minimal environment
// (PATH, HOME, TMPDIR), from a fresh directory below the SDK's install;
// its stdout is read as JSON lines as they come. The process is killed
// when ctx is done or the test ends.
func Start(t testing.TB, ctx context.Context, script Script, env map[string]string) *Proc {
	t.Helper()
	node := Node(t)
	base := Install(t)
	runs := filepath.Join(base, "run")
	if err := os.MkdirAll(runs, 0o755); err != nil {
		t.Fatal(err)
	}
	sweep(runs)
	dir, err := os.MkdirTemp(runs, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// ES modules resolve imports from the importing file's own directory
	// (NODE_PATH is for require only), so the scripts are copied here.
	entries, err := os.ReadDir(filepath.Join(here(), "scripts"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(here(), "scripts", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, e.Name()), b)
		}
	}
	main := script.name
	if script.text != "" || main == "" {
		main = "main.mjs"
		writeFile(t, filepath.Join(dir, main), []byte(script.text))
	} else if _, err := os.Stat(filepath.Join(dir, main)); err != nil {
		t.Fatalf("jssdk: no script %s in %s", main, filepath.Join(here(), "scripts"))
	}

	p := &Proc{t: t, changed: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, node, main)
	p.cmd.Dir = dir
	p.cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"TMPDIR=" + os.TempDir(),
		"NODE_PATH=" + filepath.Join(base, "node_modules"),
		"NO_COLOR=1",
	}
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.cmd.Cancel = func() error { return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }
	p.cmd.Stderr = lockedWriter{p}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting node %s: %v", main, err)
	}
	go p.read(stdout)
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
	})
	return p
}

// read collects stdout's lines until EOF, then reaps the process. A
// bufio.Reader, not a Scanner: a line of any length is read whole.
func (p *Proc) read(stdout io.Reader) {
	r := bufio.NewReader(stdout)
	for {
		b, err := r.ReadBytes('\n')
		if b = bytes.TrimSpace(b); len(b) > 0 {
			p.add(b)
		}
		if err != nil {
			break
		}
	}
	err := p.cmd.Wait()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.mu.Lock()
	p.waitErr = err
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	close(p.exited)
}

func (p *Proc) add(b []byte) {
	var head struct {
		Type string `json:"type"`
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if b[0] != '{' || json.Unmarshal(b, &head) != nil {
		if p.bad == nil {
			p.bad = fmt.Errorf("stdout line %d is not a JSON object: %.200s", len(p.lines)+1, b)
		}
		return
	}
	p.lines = append(p.lines, Line{Type: head.Type, Raw: json.RawMessage(bytes.Clone(b))})
	close(p.changed)
	p.changed = make(chan struct{})
}

// Lines is what the script has printed so far.
func (p *Proc) Lines() []Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Line(nil), p.lines...)
}

// Stderr is what the script has written to stderr so far (the SDK's log).
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// Await returns the first line, from the start of the output, for which
// match is true, waiting for it up to timeout. It fails the test if the
// script exits or prints something that is not JSON first.
func (p *Proc) Await(what string, timeout time.Duration, match func(Line) bool) Line {
	p.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	seen := 0
	for {
		p.mu.Lock()
		lines, bad, changed := p.lines[seen:], p.bad, p.changed
		p.mu.Unlock()
		for _, l := range lines {
			if match(l) {
				return l
			}
		}
		seen += len(lines)
		if bad != nil {
			p.t.Fatalf("waiting for %s: %v\n%s", what, bad, p.tail())
		}
		select {
		case <-p.exited:
			p.mu.Lock()
			more := len(p.lines) > seen
			p.mu.Unlock()
			if !more {
				p.t.Fatalf("waiting for %s: the script exited (%v)\n%s", what, p.exitErr(), p.tail())
			}
		case <-changed:
		case <-deadline.C:
			p.t.Fatalf("waiting for %s: nothing after %v\n%s", what, timeout, p.tail())
		}
	}
}

// Wait waits for the script to exit and returns all it printed, and an
// error if it exited other than with status 0 or printed a line that is
// not a JSON object.
func (p *Proc) Wait() ([]Line, error) {
	<-p.exited
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := append([]Line(nil), p.lines...)
	if p.waitErr != nil {
		return lines, fmt.Errorf("node: %w\n%s", p.waitErr, tailString(p.stderr.String(), 4000))
	}
	return lines, p.bad
}

// Run is Start and Wait.
func Run(t testing.TB, ctx context.Context, script Script, env map[string]string) ([]Line, error) {
	t.Helper()
	return Start(t, ctx, script, env).Wait()
}

func (p *Proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.waitErr == nil {
		return errors.New("status 0")
	}
	return p.waitErr
}

// tail is the end of stdout and stderr, for failure messages.
func (p *Proc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out bytes.Buffer
	from := max(0, len(p.lines)-8)
	fmt.Fprintf(&out, "--- last stdout lines (%d in all):\n", len(p.lines))
	for _, l := range p.lines[from:] {
		fmt.Fprintf(&out, "%s\n", tailString(string(l.Raw), 1500))
	}
	fmt.Fprintf(&out, "--- stderr:\n%s", tailString(p.stderr.String(), 3000))
	return out.String()
}

type lockedWriter struct{ p *Proc }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// sweep removes run directories left by test binaries killed before their
// cleanups ran: none lives an hour (go test's own timeout is shorter).
func sweep(runs string) {
	entries, _ := os.ReadDir(runs)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(filepath.Join(runs, e.Name()))
		}
	}
}

func writeFile(t testing.TB, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
