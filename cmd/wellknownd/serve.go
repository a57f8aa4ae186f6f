package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/wellknownd/wellknownd/internal/sdnotify"
	"github.com/wellknownd/wellknownd/server"
)

// runServe runs the daemon until ctx ends (SIGINT, SIGTERM).
func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("serve", stderr, &c)
	if err := parseFlags(fs, args); err != nil {
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
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["log-format"] {
		c.logFormat = cfg.Log.Format
	}
	if !set["log-level"] {
		c.logLevel.UnmarshalText([]byte(cfg.Log.Level))
	}
	log, err := newLogger(c, stderr)
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
	log.Info("starting", "version", versionString(), "config", src.name, "server_name", cfg.ServerName, "hosts", strings.Join(cfg.Hosts, ","))
	return srv.Run(ctx)
}
