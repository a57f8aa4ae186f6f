package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"

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
