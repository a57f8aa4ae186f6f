package supervise

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// entry is one supervised process (or probed service) and its state.
type entry struct {
	spec   Spec
	sup    *Supervisor
	log    *slog.Logger
	prober prober // nil: ready as soon as started
	cancel context.CancelFunc

	mu           sync.Mutex
	state        State
	pid          int
	restarts     int
	lastExit     *Exit
	startedAt    time.Time
	crashLooping bool
	nextStart    time.Time
	doneCh       chan struct{}
}

func (e *entry) done() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.doneCh == nil {
		e.doneCh = make(chan struct{})
	}
	return e.doneCh
}

func (e *entry) getState() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.state
}

// set changes the state and tells the supervisor, which recomputes
// readiness and wakes entries waiting on this one.
func (e *entry) set(s State) {
	e.mu.Lock()
	changed := e.state != s
	e.state = s
	e.mu.Unlock()
	if changed {
		e.sup.updateReady()
	}
}

func (e *entry) status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := Status{Name: e.spec.Name, State: e.state, PID: e.pid, Restarts: e.restarts, LastExit: e.lastExit,
		CrashLooping: e.crashLooping, ProbeOnly: len(e.spec.Command) == 0}
	if e.pid != 0 && !e.startedAt.IsZero() {
		st.UptimeSeconds = time.Since(e.startedAt).Seconds()
	}
	if e.state == Backoff || e.state == Failed {
		t := e.nextStart
		st.NextStart = &t
	}
	return st
}

// run is the entry's life: wait for dependencies, then start, watch and
// restart it until ctx ends, then stop it.
func (e *entry) run(ctx context.Context) {
	e.done() // make the channel, so Stop can wait on it
	defer close(e.doneCh)
	if !e.waitForDependencies(ctx) {
		e.set(Exited)
		return
	}
	if len(e.spec.Command) == 0 {
		e.probeOnly(ctx)
		return
	}
	quick := 0 // consecutive runs shorter than StableAfter
	for {
		ex, stopped := e.runOnce(ctx)
		if stopped {
			e.set(Exited)
			return
		}
		if ex.Ran >= e.sup.policy.StableAfter {
			quick = 0
		}
		delay := e.sup.policy.backoff(quick, e.rand())
		quick++
		crash := quick >= e.sup.policy.CrashLoopAfter
		next := Backoff
		if ex.Err != "" {
			next = Failed
		}
		e.mu.Lock()
		e.pid, e.crashLooping, e.nextStart = 0, crash, time.Now().Add(delay)
		e.mu.Unlock()
		e.set(next)
		if crash {
			e.log.Error("crash loop: exits again and again soon after starting", "exit", ex.String(), "quick_exits", quick, "restart_in", delay.Round(time.Millisecond))
		} else {
			e.log.Warn("exited; restarting", "exit", ex.String(), "ran", ex.Ran.Round(time.Millisecond), "restart_in", delay.Round(time.Millisecond))
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			e.set(Exited)
			return
		case <-t.C:
		}
		e.mu.Lock()
		e.restarts++
		e.mu.Unlock()
	}
}

func (e *entry) rand() func() float64 {
	if e.sup.rand != nil {
		return e.sup.rand
	}
	return defaultRand
}

func (e *entry) waitForDependencies(ctx context.Context) bool {
	for {
		ready := true
		for _, name := range e.spec.After {
			if d := e.sup.entry(name); d != nil && d.getState() != Ready {
				ready = false
			}
		}
		if ready {
			return true
		}
		changed := e.sup.changes()
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
	}
}

// runOnce starts the process and watches it until it exits (stopped
// false) or ctx ends and it has been stopped (stopped true).
func (e *entry) runOnce(ctx context.Context) (ex Exit, stopped bool) {
	start := time.Now()
	proc, err := e.sup.launch.start(e.spec, e.log)
	if err != nil {
		ex := Exit{At: time.Now(), Code: -1, Err: err.Error()}
		e.recordExit(ex)
		return ex, false
	}
	e.mu.Lock()
	e.pid, e.startedAt = proc.pid(), start
	e.mu.Unlock()
	e.set(Starting)
	e.log.Info("started", "pid", proc.pid(), "command", e.spec.Command)
	exited := make(chan Exit, 1)
	go func() { exited <- proc.wait() }()
	ex, stopped = e.watch(ctx, proc, exited)
	ex.Ran = time.Since(start)
	e.recordExit(ex)
	e.endLeftovers(proc.pid())
	// After the leftovers, which may hold the output open: once they
	// are gone it ends without waiting out the grace.
	proc.drain()
	return ex, stopped
}

func (e *entry) recordExit(ex Exit) {
	e.mu.Lock()
	e.lastExit = &ex
	e.mu.Unlock()
}

// watch probes a running process until it exits or ctx ends.
func (e *entry) watch(ctx context.Context, proc process, exited <-chan Exit) (Exit, bool) {
	p := e.sup.policy
	t := time.NewTimer(0)
	defer t.Stop()
	fails := 0
	for {
		select {
		case ex := <-exited:
			return ex, false
		case <-ctx.Done():
			return e.stop(proc, exited), true
		case <-t.C:
			fails = e.probe(ctx, fails)
			if e.getState() == Starting {
				t.Reset(p.StartProbeInterval)
			} else {
				t.Reset(p.ProbeInterval)
			}
		}
	}
}

// probe runs the readiness probe once and moves between starting, ready
// and unhealthy; it returns the count of consecutive failures.
func (e *entry) probe(ctx context.Context, fails int) int {
	var err error
	if e.prober != nil {
		err = e.prober.probe(ctx)
	}
	state := e.getState()
	if err == nil {
		if state != Ready {
			// Log first: set wakes the entries started after this one,
			// and their "started" must not precede this "ready".
			e.log.Info("ready")
			e.set(Ready)
		}
		return 0
	}
	if ctx.Err() != nil {
		return fails
	}
	fails++
	if state == Ready && fails >= e.sup.policy.UnhealthyAfter {
		e.log.Warn("unhealthy: readiness probe fails", "failures", fails, "err", err)
		e.set(Unhealthy)
	}
	return fails
}

// stop asks the process group to stop, and kills it after StopTimeout.
func (e *entry) stop(proc process, exited <-chan Exit) Exit {
	e.set(Stopping)
	e.log.Info("stopping", "signal", unix.SignalName(e.spec.StopSignal), "timeout", e.spec.StopTimeout)
	proc.signal(e.spec.StopSignal)
	t := time.NewTimer(e.spec.StopTimeout)
	defer t.Stop()
	var ex Exit
	select {
	case ex = <-exited:
	case <-t.C:
		e.log.Warn("did not stop in time; killing its process group", "timeout", e.spec.StopTimeout)
		proc.kill()
		ex = <-exited
	}
	e.log.Info("stopped", "exit", ex.String())
	return ex
}

// probeOnly watches a service this daemon does not run.
func (e *entry) probeOnly(ctx context.Context) {
	e.set(Starting)
	p := e.sup.policy
	fails := 0
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.set(Exited)
			return
		case <-t.C:
		}
		before := e.getState()
		fails = e.probe(ctx, fails)
		// A service that was never ready, or stopped answering, is
		// unhealthy at once: there is no start-up grace to wait out.
		if fails > 0 && before == Starting && fails >= p.UnhealthyAfter {
			e.set(Unhealthy)
		}
		if e.getState() == Ready {
			t.Reset(p.ProbeInterval)
		} else {
			t.Reset(p.StartProbeInterval)
		}
	}
}
