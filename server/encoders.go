package server

import (
	"context"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
)

// encoderBudget caps the compressors in use at once across the process.
// An encoder costs about 1.4 MiB (zstd) or 1 MiB (gzip) whatever its
// window, measured: without a cap, every stream a client opens and stops
// reading would hold one, and 512 of them held 1.5 GB. Past the cap a new
// answer goes out uncompressed, which is still right.
type encoderBudget struct {
	tokens chan struct{}
	// exhausted counts the answers sent uncompressed for want of one.
	exhausted prometheus.Counter
}

func newEncoderBudget(n int, m *metrics) *encoderBudget {
	b := &encoderBudget{tokens: make(chan struct{}, n), exhausted: m.compressExhausted}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wellknownd_compress_encoders_in_use",
		Help: "Compressors held now by answers being compressed (limits.compress_encoders caps it).",
	}, func() float64 { return float64(len(b.tokens)) }))
	return b
}

// try takes an encoder's place if one is free.
func (b *encoderBudget) try() bool {
	select {
	case b.tokens <- struct{}{}:
		return true
	default:
		b.exhausted.Inc()
		return false
	}
}

// wait takes a place, waiting for one until ctx ends: for an answer
// already compressed in part, which cannot change its encoding now.
func (b *encoderBudget) wait(ctx context.Context) bool {
	select {
	case b.tokens <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (b *encoderBudget) release() { <-b.tokens }

// Stream encoders are reused: a zstd encoder costs far more to make than
// to reset. One goroutine each (the encoder then writes only from within
// Write, Flush and Close, never behind the caller's back).
var (
	zstdEncoders = sync.Pool{New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
		return e
	}}
	// gzip answers are raw deflate under a gzip header and trailer the
	// compressWriter writes itself, so that a deflate stream can be
	// carried on by another compressor (see compressWriter.letGo).
	flateWriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.DefaultCompression)
		return w
	}}
)

// Static files are compressed once and kept (staticcache.go): worth the
// best ratio the encoders give at a few times the CPU.
var (
	zstdStaticEncoders = sync.Pool{New: func() any {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedBetterCompression))
		return e
	}}
	gzipStaticEncoders = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.BestCompression)
		return w
	}}
)
