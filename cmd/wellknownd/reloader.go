package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/sdnotify"
	"github.com/wellknownd/wellknownd/server"
)

// reloader re-reads the configuration from where serve found it and
// applies it to the running server. SIGHUP (systemctl reload), POST /reload
// on the admin listener and "wellknownd reload" all end here; the server's
// Reload serialises them. On any problem the running configuration stays,
// and the problems are both logged and returned (to "wellknownd reload").
type reloader struct {
	src    configSource
	log    *slog.Logger
	notify *sdnotify.Notifier
	srv    *server.Server // set once the server is built, before any reload can come
}

func (r *reloader) reload(ctx context.Context) error {
	r.notify.Reloading()
	defer func() { r.notify.Ready("serving " + strings.Join(r.srv.Hosts(), ", ")) }()
	r.log.Info("reloading", "config", r.src.name)
	err := r.srv.Reload(ctx, r.load)
	if err != nil {
		// Said here alone: neither the loader nor the server repeats it.
		err = fmt.Errorf("still serving the previous configuration: %w", err)
		r.log.Error("reload failed", "err", err)
	}
	return err
}

// load reads the source once, logging warnings; errors make it fail.
func (r *reloader) load() (*config.Config, error) {
	next, problems, err := r.src.load()
	if err != nil {
		return nil, err
	}
	for _, p := range problems.Warnings() {
		r.log.Warn("config", "problem", p.String())
	}
	if errs := problems.Errors(); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %d %s\n%s", r.src.name, len(errs), plural(len(errs), "error"), errs.Error())
	}
	return next, nil
}

// watchSIGHUP takes over SIGHUP at once (its default action ends the
// process) and returns a loop that reloads on each one until ctx ends, then
// tells the service manager the daemon is stopping.
func (r *reloader) watchSIGHUP(ctx context.Context) (loop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return func() {
		defer signal.Stop(hup)
		r.handle(ctx, hup)
	}
}

func (r *reloader) handle(ctx context.Context, hup <-chan os.Signal) {
	for {
		select {
		case <-ctx.Done():
			r.notify.Stopping()
			return
		case <-hup:
			r.reload(ctx)
		}
	}
}
