// Package cowmap provides a copy-on-write map for data that every
// request reads and that changes rarely: readers load one atomic pointer
// and never write shared memory (a reader lock would bounce its cache
// line between cores on every read); each write copies the map.
package cowmap

import (
	"iter"
	"sync"
	"sync/atomic"
)

// Map is an immutable map behind one atomic pointer, replaced on every
// write. The zero value is empty and ready; a zero V means "no value".
type Map[K comparable, V comparable] struct {
	mu sync.Mutex // serialises writers
	m  atomic.Pointer[map[K]V]
}

// Get returns k's value, or the zero V.
func (c *Map[K, V]) Get(k K) V {
	var zero V
	m := c.m.Load()
	if m == nil {
		return zero
	}
	return (*m)[k]
}

// Len is the number of keys.
func (c *Map[K, V]) Len() int {
	m := c.m.Load()
	if m == nil {
		return 0
	}
	return len(*m)
}

// All yields the keys and values of the map as it is when All is called.
func (c *Map[K, V]) All() iter.Seq2[K, V] {
	m := c.m.Load()
	return func(yield func(K, V) bool) {
		if m == nil {
			return
		}
		for k, v := range *m {
			if !yield(k, v) {
				return
			}
		}
	}
}

// Put stores v under k.
func (c *Map[K, V]) Put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := c.copyLocked()
	next[k] = v
	c.m.Store(&next)
}

// PutNew stores v under k unless k has a value; it reports whether it
// stored it.
func (c *Map[K, V]) PutNew(k K, v V) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	var zero V
	if old := c.m.Load(); old != nil && (*old)[k] != zero {
		return false
	}
	next := c.copyLocked()
	next[k] = v
	c.m.Store(&next)
	return true
}

// GetOrPut returns k's value, storing the one newV returns first when k
// has none (newV runs outside the lock and may run in several callers at
// once: one value wins) and the map holds fewer than limit keys. Past
// the limit it returns newV's value unstored.
func (c *Map[K, V]) GetOrPut(k K, limit int, newV func() V) V {
	var zero V
	if v := c.Get(k); v != zero {
		return v
	}
	v := newV()
	if c.Len() >= limit || c.PutNew(k, v) {
		return v
	}
	return c.Get(k)
}

// Remove deletes k if its value is v (a newer value stays).
func (c *Map[K, V]) Remove(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m.Load(); old == nil || (*old)[k] != v {
		return
	}
	next := c.copyLocked()
	delete(next, k)
	c.m.Store(&next)
}

func (c *Map[K, V]) copyLocked() map[K]V {
	next := map[K]V{}
	if old := c.m.Load(); old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	return next
}
