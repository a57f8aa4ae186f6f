package server

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/wellknownd/wellknownd/config"
)

// setHostsTimeout bounds the certificate work of a reload, which holds the
// reload lock: a storage outage must not stall every later reload.
const setHostsTimeout = 15 * time.Second

// Reload reads a configuration with load and applies it while serving:
// documents, hosts, routes and upstreams swap in one step (a request sees
// all of the old or all of the new), certificates are obtained for added
// hosts, and supervised entries restart only if their own entry changed.
// What only a restart can apply (listeners, the TLS section) is refused, and
// then nothing changes; so does an error from load.
//
// Reloads run one at a time, and load runs inside that lock: of two
// reloads racing an edit of the file, the one that read last applies last.
func (s *Server) Reload(ctx context.Context, load func() (*config.Config, error)) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cfg, err := load()
	if err != nil {
		return err
	}
	old := s.config()
	if what := restartOnly(old, cfg); what != "" {
		return fmt.Errorf("%s changed, which only a restart applies", what)
	}
	up := s.up
	if len(cfg.Supervise) > 0 && s.sup == nil {
		return errors.New("supervise was empty at start; adding entries needs a restart")
	}
	if s.sup == nil || len(cfg.Supervise) == 0 {
		up.ready = nil
	}
	// Opened before anything is swapped: a store that cannot be opened
	// fails the reload, and the old Service goes on serving.
	applySlidingSync, err := s.ss.reload(old, cfg, cfg.ShutdownTimeout)
	if err != nil {
		return err
	}
	st := newSite(cfg, up, s.m)
	if src := s.Certificates(); src != nil {
		// Never past a deadline: the reload lock is held meanwhile, and a
		// name that could not be taken is retried by the source itself.
		hctx, cancel := context.WithTimeout(ctx, setHostsTimeout)
		err := src.SetHosts(hctx, cfg.Hosts)
		cancel()
		if err != nil {
			s.log.Error("reload: certificates for the new hosts could not be obtained yet", "err", err)
		}
	}
	s.site.Store(st)
	s.cfg.Store(cfg)
	applySlidingSync()
	if s.sup != nil {
		s.sup.Update(supervisedSpecs(cfg.Supervise))
	}
	s.log.Info("reloaded", "hosts", cfg.Hosts)
	// What the world sees may have changed: check it now.
	s.checks.Trigger()
	return nil
}

// restartOnly names the first setting that differs and that a running
// daemon cannot change, or "".
func restartOnly(a, b *config.Config) string {
	switch {
	case a.Listen != b.Listen:
		return "listen"
	case !reflect.DeepEqual(a.TLS, b.TLS):
		return "tls"
	case a.Limits != b.Limits:
		return "limits"
	}
	return ""
}
