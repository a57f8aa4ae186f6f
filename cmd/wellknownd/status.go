package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

var statusHelp = commandHelp{
	name:    "status",
	summary: "print the running daemon's state; exit 1 when something is wrong",
	about: `Prints what the status page on the admin listener shows: certificates,
listeners, the homeserver's readiness, supervised processes, certificate
storage, the last self-check and the last hour's requests and errors. Exits 1,
naming each problem, when something needs the operator.`,
	examples: []string{
		"wellknownd status -config /etc/wellknownd/wellknownd.yaml",
		"wellknownd status -json",
	},
	bare: "config",
}

// runStatus prints what the status page shows, from the running daemon's
// admin listener (/status and /status/history), and fails when something
// needs the operator: the homeserver not ready, a certificate missing or
// expiring within 7 days, a supervised process down, the certificate
// storage not answering, a self-check that failed.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var config string
	fs := newFlagSet(&statusHelp, stdout)
	fs.configFlag(&config)
	asJSON := fs.Bool("json", false, "Print /status as the daemon answers it (JSON), and still exit 1 when something is wrong.")
	if err := fs.parseFlags(args); err != nil {
		return err
	}
	base, err := adminBase(config)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second}
	raw, err := getAdmin(ctx, client, base+"/status")
	if err != nil {
		return err
	}
	var st statusView
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("reading %s/status: %w", base, err)
	}
	problems := st.problems()
	if *asJSON {
		stdout.Write(raw)
	} else {
		var hist struct{ Requests, Errors []int }
		if b, err := getAdmin(ctx, client, base+"/status/history"); err == nil {
			json.Unmarshal(b, &hist)
		}
		st.print(stdout, base, hist.Requests, hist.Errors, problems)
	}
	if len(problems) > 0 {
		return errReported
	}
	return nil
}

func getAdmin(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reaching the daemon: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return body, nil
}

// statusView is what status prints of the admin listener's /status.
type statusView struct {
	Version       string    `json:"version"`
	Now           time.Time `json:"now"`
	Started       time.Time `json:"started"`
	UpstreamReady bool      `json:"upstream_ready"`
	NotReady      []string  `json:"not_ready"`
	Problems      []string  `json:"problems"`
	Supervised    []struct {
		Name          string  `json:"name"`
		State         string  `json:"state"`
		Restarts      int     `json:"restarts"`
		UptimeSeconds float64 `json:"uptime_seconds"`
		CrashLooping  bool    `json:"crash_looping"`
		LastExit      *struct {
			At     time.Time `json:"at"`
			Code   int       `json:"code"`
			Signal string    `json:"signal"`
			Err    string    `json:"error"`
		} `json:"last_exit"`
	} `json:"supervised"`
	Certificates []struct {
		Name       string     `json:"name"`
		Issuer     string     `json:"issuer"`
		NotBefore  *time.Time `json:"not_before"`
		NotAfter   *time.Time `json:"not_after"`
		RenewalDue *time.Time `json:"renewal_due"`
		State      string     `json:"state"`
	} `json:"certificates"`
	TLSStorage *struct {
		Kind      string `json:"kind"`
		Reachable bool   `json:"reachable"`
		LastError string `json:"last_error"`
	} `json:"tls_storage"`
	// SelfCheck is the self-check's verdicts, absent before its first
	// run.
	SelfCheck *struct {
		LastRun *time.Time `json:"last_run"`
		NextRun *time.Time `json:"next_run"`
		Running bool       `json:"running"`
		Checks  []struct {
			Name    string     `json:"name"`
			OK      bool       `json:"ok"`
			Skipped bool       `json:"skipped"`
			Cause   string     `json:"cause"`
			Fix     string     `json:"fix"`
			Since   *time.Time `json:"since"`
		} `json:"checks"`
	} `json:"self_check"`
	Listeners []struct {
		Name  string `json:"name"`
		Addr  string `json:"addr"`
		TLS   bool   `json:"tls"`
		HTTP3 bool   `json:"http3"`
	} `json:"listeners"`
	Config struct {
		ServerName    string   `json:"server_name"`
		Delegated     string   `json:"delegated"`
		ClientBaseURL string   `json:"client_base_url"`
		Hosts         []string `json:"hosts"`
		TLSMode       string   `json:"tls_mode"`
		Upstream      string   `json:"upstream"`
	} `json:"config"`
}

// problems are the daemon's own and each failed self-check.
func (st statusView) problems() []string {
	out := append([]string(nil), st.Problems...)
	if st.SelfCheck != nil {
		for _, c := range st.SelfCheck.Checks {
			if !c.OK && !c.Skipped {
				out = append(out, "self-check "+c.Name+" failed: "+c.Cause)
			}
		}
	}
	return out
}

func (st statusView) print(w io.Writer, base string, requests, errs []int, problems []string) {
	when := func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "-"
		}
		d := t.Sub(st.Now)
		if d >= 0 {
			return "in " + roughly(d) + " (" + t.Local().Format(time.DateTime) + ")"
		}
		return roughly(-d) + " ago (" + t.Local().Format(time.DateTime) + ")"
	}
	fmt.Fprintf(w, "wellknownd %s for %s at %s, started %s\n", st.Version, st.Config.ServerName, base, when(&st.Started))
	if st.UpstreamReady {
		fmt.Fprintln(w, "\nhomeserver: ready")
	} else {
		fmt.Fprintln(w, "\nhomeserver: NOT READY")
	}
	for _, p := range st.Supervised {
		line := fmt.Sprintf("  %-12s %s, %d %s", p.Name, p.State, p.Restarts, plural(p.Restarts, "restart"))
		if p.CrashLooping {
			line += ", CRASH-LOOPING"
		}
		if p.UptimeSeconds > 0 {
			line += ", up " + roughly(time.Duration(p.UptimeSeconds*float64(time.Second)))
		}
		if e := p.LastExit; e != nil {
			how := fmt.Sprintf("exit status %d", e.Code)
			if e.Signal != "" {
				how = "killed by " + e.Signal
			}
			if e.Err != "" {
				how = e.Err
			}
			line += ", last " + how + ", " + when(&e.At)
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintln(w, "\ncertificates:")
	if len(st.Certificates) == 0 {
		fmt.Fprintf(w, "  none (tls.mode %s)\n", st.Config.TLSMode)
	}
	for _, c := range st.Certificates {
		if c.NotAfter == nil {
			fmt.Fprintf(w, "  %-24s NO CERTIFICATE YET\n", c.Name)
			continue
		}
		state := ""
		if c.State != "ok" {
			state = strings.ToUpper(c.State) + ", "
		}
		renew := "when the files change"
		if c.RenewalDue != nil {
			renew = when(c.RenewalDue)
		}
		fmt.Fprintf(w, "  %-24s %sexpires %s, issued %s by %s, renewal %s\n", c.Name, state, when(c.NotAfter), when(c.NotBefore), c.Issuer, renew)
	}
	if s := st.TLSStorage; s != nil {
		if s.Reachable {
			fmt.Fprintf(w, "  storage: %s, reachable\n", s.Kind)
		} else {
			fmt.Fprintf(w, "  storage: %s, NOT REACHABLE: %s\n", s.Kind, s.LastError)
		}
	}
	fmt.Fprint(w, "\nself-check: ")
	switch sc := st.SelfCheck; {
	case sc == nil || len(sc.Checks) == 0:
		fmt.Fprintln(w, "not run yet")
	default:
		fmt.Fprintf(w, "last run %s, next %s\n", when(sc.LastRun), when(sc.NextRun))
		for _, c := range sc.Checks {
			verdict := "ok"
			switch {
			case c.Skipped:
				verdict = "skipped"
			case !c.OK:
				verdict = "FAILED: " + c.Cause
				if c.Fix != "" {
					verdict += " (fix: " + c.Fix + ")"
				}
			}
			fmt.Fprintf(w, "  %-24s %s, since %s\n", c.Name, verdict, when(c.Since))
		}
	}
	fmt.Fprintf(w, "\nlast hour: %d requests, %d errors (5xx)\n", sum(requests), sum(errs))
	fmt.Fprintln(w, "\nlisteners:")
	for _, l := range st.Listeners {
		kind := "plain"
		if l.TLS {
			kind = "TLS"
			if l.HTTP3 {
				kind += ", HTTP/3"
			}
		}
		fmt.Fprintf(w, "  %-12s %s (%s)\n", l.Name, l.Addr, kind)
	}
	fmt.Fprintf(w, "\nconfiguration: m.server %s, client %s, hosts %s, tls %s, upstream %s\n",
		st.Config.Delegated, st.Config.ClientBaseURL, strings.Join(st.Config.Hosts, ", "), st.Config.TLSMode, st.Config.Upstream)
	if len(problems) == 0 {
		fmt.Fprintln(w, "\nEverything is fine.")
		return
	}
	fmt.Fprintf(w, "\n%d %s:\n", len(problems), plural(len(problems), "problem"))
	for _, p := range problems {
		fmt.Fprintln(w, "  - "+p)
	}
}

func sum(v []int) int {
	n := 0
	for _, x := range v {
		n += x
	}
	return n
}

// roughly is a duration as a person reads it at a glance.
func roughly(d time.Duration) string {
	switch {
	case d < 90*time.Second:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < 90*time.Minute:
		return fmt.Sprintf("%d min", int(d.Minutes()+0.5))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Hours()+0.5))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24+0.5))
}
