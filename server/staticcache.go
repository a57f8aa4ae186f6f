package server

import (
	"container/list"
	"sync"
)

// staticCache keeps what static routes send most, in memory, within a
// budget of bytes (least recently used out first): small files as they are,
// so that sending them holds no descriptor, and the compressed variants of
// larger ones, so that Element Web's 8 MiB bundle is compressed once per
// version instead of per request (nginx's gzip_static and Caddy's
// precompressed avoid that cost the same way, with files made ahead).
//
// A key names one version of a file: a file changed in place gets a new
// time of change or size, hence a new key, and its old entries age out.
type staticCache struct {
	mu      sync.Mutex
	budget  int64
	used    int64
	lru     list.List // of *cacheEntry, most recently used first
	entries map[cacheKey]*list.Element
	// filling are the entries being made: whoever asks meanwhile waits
	// for the one maker (a release's first minutes, when every browser
	// asks for the same new bundle at once).
	filling map[cacheKey]*cacheFill
}

type cacheKey struct {
	// path is the file's: the route's directory and the name in it.
	path string
	mod  int64 // time of change, UnixNano
	size int64
	// encoding is the variant: "" as the file is, else its compression.
	encoding string
}

type cacheEntry struct {
	key cacheKey
	// data nil means "not worth compressing": the file goes out as it is.
	data []byte
}

type cacheFill struct {
	done chan struct{}
	data []byte
	err  error
}

func newStaticCache(budget int64) *staticCache {
	return &staticCache{budget: budget, entries: map[cacheKey]*list.Element{}, filling: map[cacheKey]*cacheFill{}}
}

// maxEntry is the largest variant kept: a quarter of the budget, so that
// one file cannot empty the cache of everything else.
func (c *staticCache) maxEntry() int64 { return c.budget / 4 }

// load returns the bytes kept for k, or makes them with fill, keeps them
// if they fit and returns them. keep false (the maker could not do it now,
// e.g. no encoder free) returns them without keeping a thing.
func (c *staticCache) load(k cacheKey, fill func() (data []byte, keep bool, err error)) ([]byte, error) {
	c.mu.Lock()
	if el, ok := c.entries[k]; ok {
		c.lru.MoveToFront(el)
		c.mu.Unlock()
		return el.Value.(*cacheEntry).data, nil
	}
	if f, ok := c.filling[k]; ok {
		c.mu.Unlock()
		<-f.done
		return f.data, f.err
	}
	f := &cacheFill{done: make(chan struct{})}
	c.filling[k] = f
	c.mu.Unlock()

	data, keep, err := fill()
	f.data, f.err = data, err
	c.mu.Lock()
	delete(c.filling, k)
	if err == nil && keep && entryCost(data) <= c.maxEntry() {
		c.entries[k] = c.lru.PushFront(&cacheEntry{key: k, data: data})
		c.used += entryCost(data)
		for c.used > c.budget {
			old := c.lru.Back()
			e := old.Value.(*cacheEntry)
			c.lru.Remove(old)
			delete(c.entries, e.key)
			c.used -= entryCost(e.data)
		}
	}
	c.mu.Unlock()
	close(f.done)
	return data, err
}

// entryCost is what an entry counts against the budget: its bytes and
// what keeping them costs besides.
func entryCost(data []byte) int64 { return int64(len(data)) + 256 }
