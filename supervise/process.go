package supervise

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"
)

// launcher starts processes; tests replace it to drive the state machine
// in fake time.
type launcher interface {
	start(spec Spec, log *slog.Logger) (process, error)
}

type process interface {
	pid() int
	// wait blocks until the process has exited and returns how.
	wait() Exit
	// drain returns once the output the process wrote before it exited
	// has been read, or after pumpGrace if something it left behind
	// still holds its output open.
	drain()
	signal(sig syscall.Signal)
	kill()
}

// execLauncher starts real processes, marked as reap names them.
type execLauncher struct{ reap *reaper }

type execProcess struct {
	cmd *exec.Cmd
	// pumps finish when every writer of the output pipes is gone.
	pumps chan struct{}
	// outR and errR are the pipes' read ends, closed to end the pumps
	// when something outside the process group keeps them open.
	outR, errR *os.File
}

func (l execLauncher) start(spec Spec, log *slog.Logger) (process, error) {
	cmd := exec.Command(spec.Command[0], spec.Command[1:]...)
	cmd.Dir = spec.Dir
	for _, kv := range os.Environ() {
		// A mark wellknownd inherited (it is supervised itself) is
		// replaced by its own.
		if k, _, _ := strings.Cut(kv, "="); !slices.Contains(spec.Withhold, k) && k != markerVar {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range spec.Env {
		if k != markerVar {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	// The mark by which what the command leaves behind is found: every
	// process it starts inherits it (reap.go).
	cmd.Env = append(cmd.Env, l.reap.marker(spec.Name))
	// Its own process group, so that stopping reaches its children too;
	// and killed by the kernel if wellknownd dies without stopping it.
	// The credentials change in the child before it runs the command, and
	// the parent-death signal is set after that change (which would clear
	// it): a wrapper such as setpriv changes them after, and loses it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: spec.Credential}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, err
	}
	l.reap.started(cmd.Process)
	p := &execProcess{cmd: cmd, pumps: make(chan struct{}), outR: outR, errR: errR}
	go func() {
		done := make(chan struct{}, 2)
		go func() { pump(outR, log, "stdout"); done <- struct{}{} }()
		go func() { pump(errR, log, "stderr"); done <- struct{}{} }()
		<-done
		<-done
		close(p.pumps)
	}()
	return p, nil
}

func (p *execProcess) pid() int { return p.cmd.Process.Pid }

// pumpGrace is how long the output of an exited process is still read:
// what it wrote just before it exited.
const pumpGrace = time.Second

func (p *execProcess) wait() Exit {
	// The process's own exit is what counts, never the end of its output:
	// a grandchild that left the group (setsid) may hold the pipes open
	// for ever, and the entry must still be seen to exit and restart.
	err := p.cmd.Wait()
	// Whatever of the group is left goes too: nothing supervised outlives
	// its entry. (What left the group is ended by the entry:
	// leftovers.go.)
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	ex := Exit{Code: p.cmd.ProcessState.ExitCode()}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ex.Signal = ws.Signal().String()
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		ex.Err = err.Error()
	}
	ex.At = time.Now()
	return ex
}

func (p *execProcess) drain() {
	select {
	case <-p.pumps:
	case <-time.After(pumpGrace):
		p.outR.Close()
		p.errR.Close()
		<-p.pumps
	}
}

func (p *execProcess) signal(sig syscall.Signal) { syscall.Kill(-p.cmd.Process.Pid, sig) }
func (p *execProcess) kill()                     { syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

// maxLine is the longest output line logged as one record; longer lines
// are logged in pieces. Reading never stops for a long line or binary
// output: a child whose pipe fills up blocks.
const maxLine = 16 << 10

// pump logs r's lines as records of log until r ends.
func pump(r io.ReadCloser, log *slog.Logger, stream string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, maxLine)
	for piece := false; ; {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := trimLine(line)
			// Only a whole line can state its level; the pieces of a
			// longer one are logged as written.
			whole := !piece && !errors.Is(err, bufio.ErrBufferFull)
			if rec, ok := parseChildLine(text); whole && ok {
				log.LogAttrs(context.Background(), rec.level, rec.msg, append(rec.attrs, slog.String("stream", stream))...)
			} else {
				log.Info(text, "stream", stream)
			}
		}
		piece = errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !piece {
			return
		}
	}
}
