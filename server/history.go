package server

import (
	"sync/atomic"
	"time"
)

// The request and error counts of the last hour, per minute, for the
// status page's charts. Every request on a public listener is counted here,
// so adding must cost no more than an atomic load and an atomic add: no
// lock, no allocation, no clock read of its own (the pipeline passes the
// time it already took).

const (
	// historyBucket is one point of the charts.
	historyBucket = time.Minute
	// historyLen is how many buckets are kept: an hour, plus the current
	// minute being filled.
	historyLen = 61
)

// history is a ring of per-minute counters. Each slot packs the minute it
// counts (minutes since the Unix epoch, which fit in 32 bits until the
// year 10136) into its high 32 bits and the count into its low 32, so
// that a slot is claimed for a new minute and counted in one word: a
// reader never sees one minute's count under another's label.
type history struct {
	requests, errors [historyLen]atomic.Uint64
}

// add counts one request answered with status at t.
func (h *history) add(t time.Time, status int) {
	m := uint64(t.Unix() / int64(historyBucket/time.Second))
	i := m % historyLen
	bump(&h.requests[i], m)
	if status >= 500 {
		bump(&h.errors[i], m)
	}
}

// activity is a number that changes whenever a request is counted: what
// releaseWhenQuiet watches, without a counter of its own on the hot path.
func (h *history) activity() uint64 {
	var sum uint64
	for i := range h.requests {
		sum += h.requests[i].Load()
	}
	return sum
}

// bump counts one in slot for minute m. The common case is a slot already
// on m: one load and one add. A slot still on an older minute is claimed
// with a compare-and-swap; a request racing that claim may land in the
// new minute, which is where it happened within a few nanoseconds.
func bump(slot *atomic.Uint64, m uint64) {
	for {
		v := slot.Load()
		if v>>32 == m {
			slot.Add(1)
			return
		}
		if v>>32 > m {
			// A request that began in the previous minute ends after
			// the slot moved on: too late to chart, not worth a retry.
			return
		}
		if slot.CompareAndSwap(v, m<<32|1) {
			return
		}
	}
}

// historyDoc is GET /status/history: a value a minute, oldest first, the
// last one the minute that ends at End (the current one, still filling).
type historyDoc struct {
	BucketSeconds int       `json:"bucket_seconds"`
	End           time.Time `json:"end"`
	Requests      []uint32  `json:"requests"`
	// Errors are the answers with a 5xx status: the edge's own (a
	// homeserver not ready, an upstream that cannot be reached) and the
	// homeserver's.
	Errors []uint32 `json:"errors"`
}

// snapshot reads the last hour as of now: the 60 buckets before now's
// and now's own. A minute nothing was counted in reads 0.
func (h *history) snapshot(now time.Time) historyDoc {
	cur := uint64(now.Unix() / int64(historyBucket/time.Second))
	doc := historyDoc{
		BucketSeconds: int(historyBucket / time.Second),
		End:           time.Unix(int64(cur+1)*int64(historyBucket/time.Second), 0).UTC(),
		Requests:      make([]uint32, historyLen),
		Errors:        make([]uint32, historyLen),
	}
	for k := range uint64(historyLen) {
		m := cur + 1 - historyLen + k
		doc.Requests[k] = countAt(&h.requests[m%historyLen], m)
		doc.Errors[k] = countAt(&h.errors[m%historyLen], m)
	}
	return doc
}

func countAt(slot *atomic.Uint64, m uint64) uint32 {
	v := slot.Load()
	if v>>32 != m {
		return 0
	}
	return uint32(v)
}
