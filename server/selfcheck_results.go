package server

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wellknownd/wellknownd/fedcheck"
)

// selfCheckResults are the self-check's verdicts: each check's last
// result and since when its verdict (passed, failed, skipped) holds. A
// verdict is logged and its metrics' change time moves only when it
// changes, not every run.
type selfCheckResults struct {
	log         *slog.Logger
	ok, changed *prometheus.GaugeVec
	lastRun     prometheus.Gauge

	mu                 sync.Mutex
	enabled            bool
	lastRunAt, nextRun time.Time
	runs               int
	checks             []checkVerdict
}

type checkVerdict struct {
	fedcheck.Check
	since time.Time
}

func newSelfCheckResults(log *slog.Logger, m *metrics) *selfCheckResults {
	r := &selfCheckResults{log: log, enabled: true}
	r.ok = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wellknownd_selfcheck_ok",
		Help: "1 when the named check of the last self-check passed, 0 when it failed; absent while it is skipped (e.g. no AAAA record).",
	}, []string{"check"})
	r.changed = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "wellknownd_selfcheck_last_change_timestamp_seconds",
		Help: "When the named check's verdict last changed (or was first found), as a Unix time.",
	}, []string{"check"})
	r.lastRun = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "wellknownd_selfcheck_last_run_timestamp_seconds",
		Help: "When the last self-check run started, as a Unix time; 0 before the first.",
	})
	m.reg.MustRegister(r.ok, r.changed, r.lastRun)
	return r
}

func verdictOf(c fedcheck.Check) string {
	switch {
	case c.Skipped:
		return "skipped"
	case c.OK:
		return "passed"
	}
	return "failed"
}

// record takes a run's checks, started at started.
func (r *selfCheckResults) record(checks []fedcheck.Check, started time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.enabled = true
	prev := map[string]checkVerdict{}
	for _, v := range r.checks {
		prev[v.Name] = v
	}
	first := r.runs == 0
	r.runs++
	r.lastRunAt = started
	r.lastRun.Set(float64(started.Unix()))
	next := make([]checkVerdict, 0, len(checks))
	failed, changes := 0, 0
	for _, c := range checks {
		v := checkVerdict{Check: c, since: started}
		old, seen := prev[c.Name]
		delete(prev, c.Name)
		now := verdictOf(c)
		if seen && verdictOf(old.Check) == now {
			v.since = old.since
		} else {
			changes++
			was := "none"
			if seen {
				was = verdictOf(old.Check)
			}
			switch {
			case now == "failed":
				r.log.Warn("self-check: failed", "check", c.Name, "cause", c.Cause, "fix", c.Fix, "was", was)
			case was == "failed" && now == "passed":
				r.log.Info("self-check: passed again", "check", c.Name, "detail", c.Detail)
			case was == "failed":
				r.log.Info("self-check: skipped now", "check", c.Name, "detail", c.Detail)
			}
		}
		if now == "failed" {
			failed++
		}
		if c.Skipped {
			r.ok.DeleteLabelValues(c.Name)
			r.changed.DeleteLabelValues(c.Name)
		} else {
			r.ok.WithLabelValues(c.Name).Set(bool01(c.OK))
			r.changed.WithLabelValues(c.Name).Set(float64(v.since.Unix()))
		}
		next = append(next, v)
	}
	// Checks that are no more (a reload changed the names): gone from
	// the metrics too.
	for name := range prev {
		r.ok.DeleteLabelValues(name)
		r.changed.DeleteLabelValues(name)
	}
	r.checks = next
	if !first && changes == 0 {
		return
	}
	if failed == 0 {
		r.log.Info("self-check: every check passed", "checks", len(checks))
		return
	}
	r.log.Warn("self-check: some checks failed", "failed", failed, "checks", len(checks))
}

func (r *selfCheckResults) scheduled(next time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextRun = next
}

// disable forgets every verdict: self_check.interval is 0.
func (r *selfCheckResults) disable() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.enabled {
		return
	}
	r.enabled, r.runs, r.checks, r.lastRunAt, r.nextRun = false, 0, nil, time.Time{}, time.Time{}
	r.ok.Reset()
	r.changed.Reset()
	r.lastRun.Set(0)
}

// selfCheckStatus is /status's self_check.
type selfCheckStatus struct {
	LastRun *time.Time             `json:"last_run"`
	NextRun *time.Time             `json:"next_run"`
	Running bool                   `json:"running"`
	Checks  []selfCheckStatusCheck `json:"checks"`
}

type selfCheckStatusCheck struct {
	Name    string `json:"name"`
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped"`
	Cause   string `json:"cause"`
	Fix     string `json:"fix"`
	// Since is when this verdict began.
	Since time.Time `json:"since"`
}

// status is the self-check for /status; nil when it is off.
func (sc *selfChecker) status() *selfCheckStatus {
	if sc == nil {
		return nil
	}
	if !sc.started.Load() {
		return nil
	}
	r := sc.results
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.enabled {
		return nil
	}
	st := &selfCheckStatus{Running: sc.running.Load(), Checks: []selfCheckStatusCheck{}}
	if !r.lastRunAt.IsZero() {
		t := r.lastRunAt.UTC().Truncate(time.Second)
		st.LastRun = &t
	}
	if !r.nextRun.IsZero() {
		t := r.nextRun.UTC().Truncate(time.Second)
		st.NextRun = &t
	}
	for _, c := range r.checks {
		st.Checks = append(st.Checks, selfCheckStatusCheck{Name: c.Name, OK: c.OK, Skipped: c.Skipped, Cause: c.Cause, Fix: c.Fix,
			Since: c.since.UTC().Truncate(time.Second)})
	}
	return st
}
