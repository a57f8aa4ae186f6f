package server

import (
	"net/http"
	"testing"
	"time"
)

// TestHistoryKeepsTheLastHourPerMinute: each minute's requests and 5xx
// answers land in that minute's bucket; minutes nothing happened in read
// 0, and a slot reused an hour later starts again from 0.
func TestHistoryKeepsTheLastHourPerMinute(t *testing.T) {
	var h history
	t0 := time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)
	h.add(t0, http.StatusOK)
	h.add(t0, http.StatusBadGateway)
	h.add(t0.Add(time.Minute), http.StatusNotFound)
	last := historyLen - 1
	doc := h.snapshot(t0.Add(time.Minute))
	if doc.Requests[last-1] != 2 || doc.Errors[last-1] != 1 || doc.Requests[last] != 1 {
		t.Errorf("a minute before: %d requests, %d errors, then %d; want 2, 1, 1", doc.Requests[last-1], doc.Errors[last-1], doc.Requests[last])
	}
	var sum uint32
	for _, n := range doc.Requests[:last-1] {
		sum += n
	}
	if sum != 0 {
		t.Errorf("empty minutes read %d requests", sum)
	}
	// An hour and a bit later: t0's slot is reused for this minute.
	later := t0.Add(historyLen * time.Minute)
	h.add(later, http.StatusOK)
	doc = h.snapshot(later)
	if doc.Requests[last] != 1 || doc.Errors[last] != 0 {
		t.Errorf("this minute: %d requests, %d errors; want 1, 0 (the slot's old minute forgotten)", doc.Requests[last], doc.Errors[last])
	}
	if doc.Requests[0] != 1 || doc.Errors[0] != 0 {
		t.Errorf("60 minutes ago: %d requests, %d errors; want 1 (the 404), 0", doc.Requests[0], doc.Errors[0])
	}
	if !doc.End.Equal(time.Date(2026, 3, 1, 11, 2, 0, 0, time.UTC)) {
		t.Errorf("end %v", doc.End)
	}
}

// TestHistoryCountsWithoutAllocating: the pipeline counts every request
// here; that must not allocate.
func TestHistoryCountsWithoutAllocating(t *testing.T) {
	var h history
	now := time.Now()
	if n := testing.AllocsPerRun(1000, func() { h.add(now, http.StatusInternalServerError) }); n != 0 {
		t.Errorf("history.add allocates %v times a request", n)
	}
}

// TestHistoryCountsWhatTheListenersAnswered: requests through the public
// handler show in /status/history, their 5xx as errors.
func TestHistoryCountsWhatTheListenersAnswered(t *testing.T) {
	up := newRecorder(t)
	e := startEdge(t, edgeConfig(up.URL), withAdmin)
	for range 5 {
		send(t, e, "GET", "matrix.example.com", "/_matrix/client/versions", nil)
	}
	dead := startEdge(t, edgeConfig("http://127.0.0.1:1"), withAdmin)
	if resp, _ := send(t, dead, "GET", "matrix.example.com", "/_matrix/client/versions", nil); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("unreachable upstream: %s", resp.Status)
	}
	for _, c := range []struct {
		e              *testEdge
		requests, errs uint32
	}{{e, 5, 0}, {dead, 1, 1}} {
		var doc historyDoc
		getJSON(t, c.e.admin.URL+"/status/history", &doc)
		var req, errs uint32
		for i := range doc.Requests {
			req, errs = req+doc.Requests[i], errs+doc.Errors[i]
		}
		if req != c.requests || errs != c.errs || len(doc.Requests) != historyLen || doc.BucketSeconds != 60 {
			t.Errorf("/status/history: %d requests, %d errors in %d buckets; want %d, %d", req, errs, len(doc.Requests), c.requests, c.errs)
		}
	}
}

// BenchmarkHistoryAdd is the pipeline's cost of counting, from every
// core at once.
func BenchmarkHistoryAdd(b *testing.B) {
	var h history
	now := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.add(now, http.StatusOK)
		}
	})
}
