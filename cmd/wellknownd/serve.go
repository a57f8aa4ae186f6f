package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wellknownd/wellknownd/internal/sdnotify"
	"github.com/wellknownd/wellknownd/server"
)

var serveHelp = commandHelp{
	name:    "serve",
	summary: "run the daemon",
	about: `Runs the daemon: serves the /.well-known/matrix documents, obtains and renews
certificates, proxies the client and federation APIs to the homeserver, and
starts and watches the processes under supervise:. SIGHUP (systemctl reload)
re-reads the configuration and keeps the old one if the new one has errors;
SIGINT or SIGTERM stop accepting, drain requests for shutdown_timeout, stop
the supervised processes and exit 0. A configuration with errors starts
nothing: every problem is printed, with its file and line, and it exits 1.`,
	examples: []string{
		"wellknownd serve -config /etc/wellknownd/wellknownd.yaml",
		"wellknownd serve                 # ./wellknownd.yaml, else a built-in config for localhost",
		"wellknownd serve -log-format json -log-level debug",
	},
	bare: "config",
}

// runServe runs the daemon until ctx ends (SIGINT, SIGTERM).
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet(&serveHelp, stdout)
	fs.configFlag(&c.config)
	fs.logFlags(&c)
	if err := fs.parseFlags(args); err != nil {
		return err
	}
	src, cfg, problems, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	if errs := problems.Errors(); len(errs) > 0 {
		for _, p := range errs {
			fmt.Fprintln(stderr, p.String())
		}
		return fmt.Errorf("%s: %d %s; nothing started", src.name, len(errs), plural(len(errs), "error"))
	}
	// The config's log section applies unless a flag said otherwise.
	log, err := newLogger(cmp.Or(c.logFormat, cfg.Log.Format), cmp.Or(c.logLevel, cfg.Log.Level), stderr)
	if err != nil {
		return err
	}
	for _, p := range problems.Warnings() {
		log.Warn("config", "problem", p.String())
	}

	if len(cfg.Supervise) > 0 {
		// What a supervised process leaves behind (a setsid daemon, a
		// double fork) is re-parented to the daemon instead of init, so
		// that the supervisor can end it with its entry and reap it
		// (supervise/reap.go). The flag is the whole process's, so the
		// daemon sets it, not the supervise package: a program that
		// embeds a supervisor decides for itself. The supervisor is made
		// only when the configuration starts with entries, as here.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Warn("not a child subreaper: what supervised processes leave behind goes to init and outlives them", "err", err)
		}
	}

	notify := sdnotify.FromEnv()
	rl := &reloader{src: src, log: log, notify: notify}
	srv := server.New(cfg, log,
		server.WithVersion(versionNumber()),
		server.WithReloader(rl.reload),
		server.WithOnServing(func() {
			if err := notify.Ready("serving " + strings.Join(cfg.Hosts, ", ")); err != nil {
				log.Warn("systemd notify", "err", err)
			}
		}))
	rl.srv = srv
	// The helpers end with ctx; runServe waits for them, so that nothing
	// (a reload, a watchdog pet) outlives the daemon's return.
	ctx, cancel := context.WithCancel(ctx)
	var helpers sync.WaitGroup
	defer helpers.Wait()
	defer cancel()
	helpers.Go(rl.watchSIGHUP(ctx))
	if iv := sdnotify.WatchdogInterval(); iv > 0 {
		helpers.Go(func() { notify.Watchdog(ctx, iv, srv.Serving) })
	}
	started := time.Now()
	log.Info("starting", "version", versionString(), "config", src.name, "server_name", cfg.ServerName, "hosts", strings.Join(cfg.Hosts, ","))
	err = srv.Run(ctx)
	cancel()
	helpers.Wait()
	// The last line of every run, once everything it started is gone: a
	// log that ends without it ended with a crash or a SIGKILL.
	ran := time.Since(started).Round(time.Millisecond)
	if err != nil {
		log.Error("stopped", "err", err, "ran", ran)
		return logged{err}
	}
	log.Info("stopped", "ran", ran)
	return nil
}

// logged is an error the log has already said: main only sets the exit
// status, and a plain line does not break a JSON log's last record.
type logged struct{ err error }

func (e logged) Error() string   { return e.err.Error() }
func (e logged) Unwrap() []error { return []error{e.err, errReported} }
