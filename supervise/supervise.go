// Package supervise runs the processes behind the edge (Dendrite, perhaps
// PostgreSQL): it starts them in dependency order, probes their readiness,
// restarts what exits with exponential backoff, and stops them in reverse
// order; what a process leaves behind (a setsid daemon, a double fork) is
// ended with it and reaped (reap.go). It also watches services it does not
// run (probe-only entries).
package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Spec is one supervised entry.
type Spec struct {
	// Name identifies the entry in logs, status and After lists.
	Name string
	// Command is argv; empty for a probe-only entry (a service run by
	// something else, such as a container).
	Command []string
	Dir     string
	// Env is added to wellknownd's own environment.
	Env map[string]string
	// Withhold names variables of wellknownd's own environment that are
	// not passed on: secrets that are the edge's alone, such as a DNS
	// provider's API token. Env may still set them.
	Withhold []string
	// After names entries that must be ready before this one starts.
	After []string
	// Ready is how readiness is probed.
	Ready Probe
	// StopSignal asks the process group to stop; after StopTimeout the
	// group is killed.
	StopSignal  syscall.Signal
	StopTimeout time.Duration
	// Credential, when set, is the user and groups the command runs as.
	Credential *syscall.Credential
}

// State is what an entry is doing, in words an operator reads.
type State string

// The states an entry moves through.
const (
	Waiting   State = "waiting"   // for its After entries to be ready
	Starting  State = "starting"  // started, not yet ready
	Ready     State = "ready"     // running and answering its probe
	Unhealthy State = "unhealthy" // running, but its probe fails
	Backoff   State = "backoff"   // exited; restarting after a delay
	Stopping  State = "stopping"  // asked to stop
	Exited    State = "exited"    // stopped on request
	Failed    State = "failed"    // cannot be started at all
)

// Policy holds the timings of supervision.
type Policy struct {
	// InitialBackoff is the first restart delay; it doubles with each quick
	// exit up to MaxBackoff, and resets after a run of StableAfter.
	InitialBackoff, MaxBackoff, StableAfter time.Duration
	// Jitter spreads each delay by up to this fraction either way, so that
	// a stack restarting together does not retry in lockstep.
	Jitter float64
	// ProbeInterval is how often a running entry is probed once ready;
	// StartProbeInterval while it is starting.
	ProbeInterval, StartProbeInterval, ProbeTimeout time.Duration
	// UnhealthyAfter consecutive failed probes mark a ready entry unhealthy.
	UnhealthyAfter int
	// CrashLoopAfter consecutive quick exits report a crash loop.
	CrashLoopAfter int
}

// DefaultPolicy is what the daemon uses: 1 s doubling to 5 min, reset
// after a minute of running.
var DefaultPolicy = Policy{
	InitialBackoff: time.Second, MaxBackoff: 5 * time.Minute, StableAfter: time.Minute, Jitter: 0.1,
	ProbeInterval: 5 * time.Second, StartProbeInterval: 250 * time.Millisecond, ProbeTimeout: 2 * time.Second,
	UnhealthyAfter: 3, CrashLoopAfter: 3,
}

// Exit describes how a process ended.
type Exit struct {
	At time.Time `json:"at"`
	// Code is the exit status, -1 when killed by a signal.
	Code   int    `json:"code"`
	Signal string `json:"signal,omitempty"`
	// Err is set when the process could not be started.
	Err string `json:"error,omitempty"`
	// Ran is how long it ran.
	Ran time.Duration `json:"-"`
}

// Status is an entry's state for the status document.
type Status struct {
	Name          string  `json:"name"`
	State         State   `json:"state"`
	PID           int     `json:"pid,omitempty"`
	Restarts      int     `json:"restarts"`
	LastExit      *Exit   `json:"last_exit,omitempty"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	CrashLooping  bool    `json:"crash_looping"`
	// NextStart is when a backing-off entry is started again.
	NextStart *time.Time `json:"next_start,omitempty"`
	ProbeOnly bool       `json:"probe_only"`
}

// Supervisor runs a set of entries.
type Supervisor struct {
	log    *slog.Logger
	policy Policy
	launch launcher
	// reap waits for orphans and finds what an entry left behind; nil
	// when the processes are not real (the state machine's tests).
	reap *reaper
	// rand is the jitter source; nil uses math/rand.
	rand    func() float64
	entries []*entry // in start order: every entry after its After entries
	ready   atomic.Bool
	// changed is closed and replaced whenever any entry changes state, to
	// wake entries waiting on their dependencies.
	mu      sync.Mutex
	changed chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// New builds a supervisor for specs, which must already be validated
// (names unique, After acyclic and known).
func New(specs []Spec, log *slog.Logger, policy Policy) *Supervisor {
	r := newReaper(log)
	s := newSupervisor(specs, log, policy, execLauncher{reap: r})
	s.reap = r
	return s
}

func newSupervisor(specs []Spec, log *slog.Logger, policy Policy, l launcher) *Supervisor {
	s := &Supervisor{log: log, policy: policy, launch: l, changed: make(chan struct{})}
	for _, sp := range startOrder(specs) {
		e := &entry{spec: sp, sup: s, state: Waiting, log: log.With("process", sp.Name)}
		e.prober = newProber(sp.Ready, policy.ProbeTimeout)
		s.entries = append(s.entries, e)
	}
	s.updateReady()
	return s
}

// startOrder sorts specs so that each comes after those it names in After,
// keeping the configured order otherwise.
func startOrder(specs []Spec) []Spec {
	var out []Spec
	done := map[string]bool{}
	for len(out) < len(specs) {
		progressed := false
		for _, sp := range specs {
			if done[sp.Name] {
				continue
			}
			ok := true
			for _, a := range sp.After {
				ok = ok && done[a]
			}
			if ok {
				out = append(out, sp)
				done[sp.Name] = true
				progressed = true
			}
		}
		if !progressed {
			panic("supervise: After has a cycle or an unknown name; validate the config first")
		}
	}
	return out
}

// Start runs every entry; each waits for its dependencies itself.
func (s *Supervisor) Start(ctx context.Context) {
	s.ctx, s.cancel = context.WithCancel(ctx)
	if s.reap != nil {
		s.wg.Go(func() { s.reap.run(s.ctx) })
	}
	for _, e := range s.entries {
		ectx, cancel := context.WithCancel(s.ctx)
		e.cancel = cancel
		s.wg.Go(func() { e.run(ectx) })
	}
}

// Stop stops the entries in reverse start order, each completely (its
// process group and what it left behind gone) before the next, and returns
// when all are stopped.
func (s *Supervisor) Stop() {
	if s.cancel == nil {
		return
	}
	entries := s.list()
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		e.cancel()
		<-e.done()
	}
	s.cancel()
	s.wg.Wait()
}

// Ready reports whether every entry is ready: the proxy's view of whether
// the homeserver can answer.
func (s *Supervisor) Ready() bool { return s.ready.Load() }

// Status is every entry's state, in start order.
func (s *Supervisor) Status() []Status {
	entries := s.list()
	out := make([]Status, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.status())
	}
	return out
}

// list is the current entries; Update may replace the slice.
func (s *Supervisor) list() []*entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entries
}

func (s *Supervisor) updateReady() {
	all := true
	for _, e := range s.list() {
		all = all && e.getState() == Ready
	}
	s.ready.Store(all)
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Supervisor) changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Supervisor) entry(name string) *entry {
	for _, e := range s.list() {
		if e.spec.Name == name {
			return e
		}
	}
	return nil
}

// backoff is the delay before restart number n (0-based) of a quickly
// exiting entry: InitialBackoff doubled n times, capped, with jitter.
func (p Policy) backoff(n int, rnd func() float64) time.Duration {
	d := p.InitialBackoff
	for i := 0; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	if p.Jitter > 0 {
		d = time.Duration(float64(d) * (1 + p.Jitter*(2*rnd()-1)))
	}
	return d
}

func defaultRand() float64 { return rand.Float64() }

func (e Exit) String() string {
	switch {
	case e.Err != "":
		return "could not start: " + e.Err
	case e.Signal != "":
		// Signal is Go's description ("killed", "terminated"), kept as
		// the status document has always had it; said alone after
		// "killed by" it read "killed by killed".
		return "killed by " + signalName(e.Signal)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// Update replaces the set of entries with specs, touching only what
// changed: an entry whose spec is the same keeps running; a changed or
// removed one is stopped (dependents first); a changed or new one starts.
func (s *Supervisor) Update(specs []Spec) {
	keep := map[string]bool{}
	for _, sp := range specs {
		if e := s.entry(sp.Name); e != nil && specEqual(e.spec, sp) {
			keep[sp.Name] = true
		}
	}
	for i := len(s.entries) - 1; i >= 0; i-- {
		if e := s.entries[i]; !keep[e.spec.Name] {
			e.log.Info("configuration changed; stopping this entry")
			e.cancel()
			<-e.done()
		}
	}
	var entries []*entry
	var fresh []*entry
	for _, sp := range startOrder(specs) {
		if keep[sp.Name] {
			entries = append(entries, s.entry(sp.Name))
			continue
		}
		e := &entry{spec: sp, sup: s, state: Waiting, log: s.log.With("process", sp.Name)}
		e.prober = newProber(sp.Ready, s.policy.ProbeTimeout)
		entries = append(entries, e)
		fresh = append(fresh, e)
	}
	s.mu.Lock()
	s.entries = entries
	s.mu.Unlock()
	s.updateReady()
	for _, e := range fresh {
		ectx, cancel := context.WithCancel(s.ctx)
		e.cancel = cancel
		s.wg.Go(func() { e.run(ectx) })
	}
}

func specEqual(a, b Spec) bool {
	return reflect.DeepEqual(a, b)
}

// signalName is the name (SIGKILL) of the signal Go describes as desc
// ("killed"), or desc itself when no signal has that description.
func signalName(desc string) string {
	for sig := syscall.Signal(1); sig < 65; sig++ {
		if sig.String() == desc {
			if name := unix.SignalName(sig); name != "" {
				return name
			}
		}
	}
	return desc
}
