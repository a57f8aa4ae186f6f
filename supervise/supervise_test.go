package supervise

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// fakeLauncher starts fake processes that live for a given time (in the
// synctest bubble's fake clock) and records when each was started.
type fakeLauncher struct {
	mu     sync.Mutex
	starts map[string][]time.Time
	// life is how long a process of that name runs before exiting 1;
	// 0 runs until signalled.
	life map[string]time.Duration
	// failStart makes start fail, as for a missing binary.
	failStart map[string]bool
	// stopsOn ignores the stop signal for these names: only a kill works.
	ignoresStop map[string]bool
	events      []string
}

func newFake() *fakeLauncher {
	return &fakeLauncher{starts: map[string][]time.Time{}, life: map[string]time.Duration{}, failStart: map[string]bool{}, ignoresStop: map[string]bool{}}
}

func (f *fakeLauncher) record(ev string) {
	f.mu.Lock()
	f.events = append(f.events, ev)
	f.mu.Unlock()
}

type fakeProc struct {
	f      *fakeLauncher
	name   string
	exit   chan Exit
	once   sync.Once
	ignore bool
}

func (f *fakeLauncher) start(spec Spec, _ *slog.Logger) (process, error) {
	f.mu.Lock()
	f.starts[spec.Name] = append(f.starts[spec.Name], time.Now())
	life, fail := f.life[spec.Name], f.failStart[spec.Name]
	f.mu.Unlock()
	f.record("start " + spec.Name)
	if fail {
		return nil, errors.New("exec: no such file")
	}
	p := &fakeProc{f: f, name: spec.Name, exit: make(chan Exit, 1), ignore: f.ignoresStop[spec.Name]}
	if life > 0 {
		time.AfterFunc(life, func() { p.end(Exit{Code: 1}) })
	}
	return p, nil
}

func (p *fakeProc) end(ex Exit) {
	p.once.Do(func() {
		ex.At = time.Now()
		p.exit <- ex
	})
}
func (p *fakeProc) pid() int   { return 4242 }
func (p *fakeProc) wait() Exit { return <-p.exit }
func (p *fakeProc) drain()     {}
func (p *fakeProc) kill()      { p.f.record("kill " + p.name); p.end(Exit{Code: -1, Signal: "killed"}) }
func (p *fakeProc) signal(sig syscall.Signal) {
	p.f.record("signal " + p.name)
	if !p.ignore {
		// A graceful stop takes a moment.
		time.AfterFunc(100*time.Millisecond, func() { p.end(Exit{Code: 0}) })
	}
}

var testPolicy = Policy{
	InitialBackoff: time.Second, MaxBackoff: 30 * time.Second, StableAfter: time.Minute,
	ProbeInterval: 5 * time.Second, StartProbeInterval: 250 * time.Millisecond, ProbeTimeout: time.Second,
	UnhealthyAfter: 3, CrashLoopAfter: 3,
}

func spec(name string, after ...string) Spec {
	return Spec{Name: name, Command: []string{"/bin/" + name}, After: after, StopSignal: syscall.SIGTERM, StopTimeout: 5 * time.Second}
}

func newTestSupervisor(specs []Spec, f *fakeLauncher) *Supervisor {
	s := newSupervisor(specs, slog.New(slog.DiscardHandler), testPolicy, f)
	s.rand = func() float64 { return 0.5 } // no jitter: exact delays
	return s
}

// TestBackoffDoublesToCapAndReportsCrashLoop: a command that exits at once
// is restarted after 1, 2, 4, 8, 16, 30, 30 s, and marked crash-looping from
// its third quick exit.
func TestBackoffDoublesToCapAndReportsCrashLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.life["dendrite"] = 10 * time.Millisecond
		s := newTestSupervisor([]Spec{spec("dendrite")}, f)
		s.Start(context.Background())
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		st := s.Status()[0]
		s.Stop()

		starts := f.starts["dendrite"]
		var gaps []time.Duration
		for i := 1; i < len(starts); i++ {
			// Each gap is the 10 ms run plus the backoff delay.
			gaps = append(gaps, starts[i].Sub(starts[i-1])-10*time.Millisecond)
		}
		want := []time.Duration{1 * time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
		if len(gaps) < len(want) {
			t.Fatalf("restart gaps %v, want at least %v", gaps, want)
		}
		for i, w := range want {
			if gaps[i] != w {
				t.Fatalf("restart gaps %v, want %v", gaps[:len(want)], want)
			}
		}
		if !st.CrashLooping || st.State != Backoff || st.Restarts < 6 {
			t.Fatalf("status after two minutes of quick exits: %+v", st)
		}
		if s.Ready() {
			t.Fatal("a crash-looping entry counts as ready")
		}
	})
}

// TestBackoffResetsAfterStableRun: after a run longer than StableAfter the
// next restart waits the initial delay again.
func TestBackoffResetsAfterStableRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.life["d"] = 10 * time.Millisecond
		s := newTestSupervisor([]Spec{spec("d")}, f)
		s.Start(context.Background())
		time.Sleep(20 * time.Second) // quick exits: backoff grows to 8 s
		f.mu.Lock()
		f.life["d"] = 2 * time.Minute // now it runs stably, then exits
		f.mu.Unlock()
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		s.Stop()
		starts := f.starts["d"]
		// Find the first start after a long run and the one after it.
		for i := 1; i < len(starts); i++ {
			if starts[i].Sub(starts[i-1]) > time.Minute {
				if i+1 >= len(starts) {
					t.Fatalf("no restart after the stable run: %v", starts)
				}
				if gap := starts[i+1].Sub(starts[i]) - 2*time.Minute; gap != time.Second {
					t.Fatalf("restart after a stable run waited %v, want the initial 1s", gap)
				}
				return
			}
		}
		t.Fatalf("no stable run among starts %v", starts)
	})
}

// TestStartOrderAndReverseStop: an entry starts only once what it comes
// after is ready; stopping goes in reverse order.
func TestStartOrderAndReverseStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		// dendrite is listed first but comes after postgres.
		s := newTestSupervisor([]Spec{spec("dendrite", "postgres"), spec("postgres")}, f)
		s.Start(context.Background())
		synctest.Wait()
		time.Sleep(time.Second)
		synctest.Wait()
		if !s.Ready() {
			t.Fatalf("not ready: %+v", s.Status())
		}
		s.Stop()
		want := []string{"start postgres", "start dendrite", "signal dendrite", "signal postgres"}
		if len(f.events) != len(want) {
			t.Fatalf("events %v, want %v", f.events, want)
		}
		for i := range want {
			if f.events[i] != want[i] {
				t.Fatalf("events %v, want %v", f.events, want)
			}
		}
		for _, st := range s.Status() {
			if st.State != Exited {
				t.Fatalf("after Stop: %+v", st)
			}
		}
	})
}

// TestStopKillsAfterTimeout: a process that ignores its stop signal is
// killed once stop_timeout has passed, not before.
func TestStopKillsAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.ignoresStop["stubborn"] = true
		s := newTestSupervisor([]Spec{spec("stubborn")}, f)
		s.Start(context.Background())
		time.Sleep(time.Second)
		begin := time.Now()
		s.Stop()
		if took := time.Since(begin); took != 5*time.Second {
			t.Fatalf("stop took %v, want the 5s stop_timeout", took)
		}
		if f.events[len(f.events)-1] != "kill stubborn" {
			t.Fatalf("events %v", f.events)
		}
	})
}

// TestStartFailureIsFailedAndRetried: a command that cannot be started is
// marked failed and retried with backoff.
func TestStartFailureIsFailedAndRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.failStart["ghost"] = true
		s := newTestSupervisor([]Spec{spec("ghost")}, f)
		s.Start(context.Background())
		time.Sleep(4 * time.Second)
		synctest.Wait()
		st := s.Status()[0]
		s.Stop()
		if st.State != Failed || st.LastExit == nil || st.LastExit.Err == "" || len(f.starts["ghost"]) != 3 {
			t.Fatalf("status %+v after %d starts", st, len(f.starts["ghost"]))
		}
	})
}

// TestUpdateRestartsOnlyChangedEntries: a reload restarts exactly the
// entries whose configuration changed, stops removed ones, starts new ones.
func TestUpdateRestartsOnlyChangedEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		keep, change, drop := spec("keep"), spec("change"), spec("drop")
		s := newTestSupervisor([]Spec{keep, change, drop}, f)
		s.Start(context.Background())
		time.Sleep(time.Second)
		synctest.Wait()
		changed := change
		changed.Command = []string{"/bin/change", "-new-flag"}
		s.Update([]Spec{keep, changed, spec("add")})
		time.Sleep(time.Second)
		synctest.Wait()
		if got := len(f.starts["keep"]); got != 1 {
			t.Fatalf("unchanged entry started %d times", got)
		}
		if got := len(f.starts["change"]); got != 2 {
			t.Fatalf("changed entry started %d times, want 2", got)
		}
		if got := len(f.starts["add"]); got != 1 {
			t.Fatalf("new entry started %d times", got)
		}
		var names []string
		for _, st := range s.Status() {
			names = append(names, st.Name+"="+string(st.State))
		}
		if want := "keep=ready,change=ready,add=ready"; strings.Join(names, ",") != want {
			t.Fatalf("after update: %s, want %s", strings.Join(names, ","), want)
		}
		s.Stop()
		if !strings.Contains(strings.Join(f.events, ","), "signal drop") {
			t.Fatalf("removed entry not stopped: %v", f.events)
		}
	})
}
