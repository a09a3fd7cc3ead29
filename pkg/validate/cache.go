package validate

import (
	"container/list"
	"sync"
)

// verdictCache is a least-recently-used cache of LLM verdicts with a fixed number of
// entries. It is safe for concurrent use.
type verdictCache struct {
	mu      sync.Mutex
	size    int
	order   *list.List // front is the most recently used
	entries map[string]*list.Element
}

type cacheEntry struct {
	key     string
	verdict llmVerdict
}

func newVerdictCache(size int) *verdictCache {
	return &verdictCache{size: size, order: list.New(), entries: make(map[string]*list.Element, size)}
}

func (c *verdictCache) get(key string) (llmVerdict, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()

	e, ok := c.entries[key]
	if !ok {
		return llmVerdict{}, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).verdict, true
}

func (c *verdictCache) put(key string, v llmVerdict) {
	c.mu.Lock()
	defer c.mu.Unlock()

	if e, ok := c.entries[key]; ok {
		e.Value.(*cacheEntry).verdict = v
		c.order.MoveToFront(e)
		return
	}
	c.entries[key] = c.order.PushFront(&cacheEntry{key: key, verdict: v})
	if c.order.Len() > c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
}

func (c *verdictCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
