package server

import (
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// The per-request pipeline: what every request on a public listener goes
// through before routing, in one place so that its cost on the hot path
// (the documents, the proxy) is seen at a glance.

// instrumented wraps a listener's routing with what every request gets:
// the site loaded once, metrics, and the optional request log.
func (s *Server) instrumented(serve func(*site, http.ResponseWriter, *http.Request, *hostRoute)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := s.site.Load()
		hr := st.lookup(r.Host)
		hm := st.unknown
		if hr != nil {
			hm = hr.metrics
		}
		rec := recorders.Get().(*statusRecorder)
		*rec = statusRecorder{ResponseWriter: w, stall: newStallWatch(w, r, s.up.limits.sendTimeout)}
		s.m.inflight.Add(1)
		defer func() {
			// Deferred: a proxy whose client vanished mid-body panics with
			// http.ErrAbortHandler, and that request still counts.
			s.m.inflight.Add(-1)
			took := time.Since(start)
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			hm.observe(classOf(r.URL.Path), status, took)
			s.hist.add(start, status)
			if st.logRequests {
				s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("host", r.Host),
					slog.String("path", r.URL.Path), slog.Int("status", status), slog.Int64("bytes", rec.bytes),
					slog.Duration("took", took), slog.String("peer", r.RemoteAddr))
			}
			if rec.stall != nil {
				rec.stall.stop()
			}
			*rec = statusRecorder{}
			recorders.Put(rec)
		}()
		if r.ContentLength != 0 && r.ProtoMajor == 1 {
			defer boundLeftoverBody(rec)
		}
		if r.TLS != nil && hr != nil && st.hsts != nil {
			w.Header()["Strict-Transport-Security"] = st.hsts
		}
		s.m.byProtocol[min(max(r.ProtoMajor, 1), 3)-1].Inc()
		if msg := badRequest(r); msg != "" {
			writeMatrixError(rec, corsReadOnly, http.StatusBadRequest, codeUnrecognized, msg)
			return
		}
		var out http.ResponseWriter = rec
		if st.compressMin > 0 && r.Method != http.MethodHead && r.Header.Get("Range") == "" && !isMediaPath(r.URL.Path) &&
			(st.compressWellKnown || !strings.HasPrefix(r.URL.Path, wellKnownPrefix)) {
			if enc := negotiateEncoding(r.Header.Get("Accept-Encoding")); enc != "" {
				inm := r.Header.Get("If-None-Match")
				stripEncodingTags(r.Header)
				cw := newCompressWriter(rec, enc, st.compressMin, inm, s.up.encoders, r.Context())
				// Before the recorder's accounting above: defers run last
				// first.
				defer cw.Close()
				out = cw
			}
		}
		serve(st, out, r, hr)
	})
}
