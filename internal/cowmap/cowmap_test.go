package cowmap

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestPutNewKeepsTheFirstValueAndRemoveOnlyTheGivenOne(t *testing.T) {
	var m Map[string, *int]
	one, two := new(int), new(int)
	assert.Nil(t, m.Get("a"))
	assert.True(t, m.PutNew("a", one))
	assert.False(t, m.PutNew("a", two))
	assert.Same(t, one, m.Get("a"))
	m.Remove("a", two) // not its value: stays
	assert.Same(t, one, m.Get("a"))
	m.Put("a", two)
	assert.Same(t, two, m.Get("a"))
	m.Remove("a", two)
	assert.Nil(t, m.Get("a"))
	assert.Zero(t, m.Len())
}

func TestGetOrPutStoresOneValueUpToTheLimit(t *testing.T) {
	var m Map[int, *int]
	var wg sync.WaitGroup
	got := make([]*int, 8)
	for i := range got {
		wg.Go(func() { got[i] = m.GetOrPut(1, 2, func() *int { return new(int) }) })
	}
	wg.Wait()
	for _, p := range got {
		assert.Same(t, m.Get(1), p, "every caller gets the stored value")
	}
	m.GetOrPut(2, 2, func() *int { return new(int) })
	past := m.GetOrPut(3, 2, func() *int { return new(int) })
	assert.NotNil(t, past)
	assert.Nil(t, m.Get(3), "past the limit nothing is stored")
	keys := map[int]bool{}
	for k := range m.All() {
		keys[k] = true
	}
	assert.Equal(t, map[int]bool{1: true, 2: true}, keys)
}
