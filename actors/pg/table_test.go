package pg

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ergo-services/ergo/etf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTableCopiesAndMultiplicity(t *testing.T) {
	tb := newTable()
	tb.add("g", []etf.Pid{p1, p1, b1}, false)
	tb.add("g", []etf.Pid{p2}, true)

	got := tb.members("g")
	got[0] = etf.Pid{}
	assert.True(t, sameMembers(tb.members("g"), []etf.Pid{p1, p1, b1, p2}), "readers get copies")
	assert.Equal(t, []etf.Pid{p2}, tb.localMembers("g"))
	assert.Equal(t, 4, tb.count("g"))

	tb.remove("g", []etf.Pid{p1, b2}, false) // b2 is not there
	assert.True(t, sameMembers(tb.members("g"), []etf.Pid{p1, b1, p2}))
	tb.remove("g", []etf.Pid{p2}, true)
	assert.Nil(t, tb.localMembers("g"))
	assert.Equal(t, []string{"g"}, tb.groups(false))
	assert.Nil(t, tb.groups(true))
	tb.remove("g", []etf.Pid{p1, b1}, false)
	assert.Nil(t, tb.members("g"))
	assert.Nil(t, tb.groups(false))
	_, ok := tb.random("g")
	assert.False(t, ok)

	tb.add("g", []etf.Pid{p1}, true)
	tb.close()
	assert.Nil(t, tb.members("g"))
	tb.add("g", []etf.Pid{p1}, true)
	assert.Nil(t, tb.members("g"), "a closed table stays empty")
}

// Subscribing while the table changes: each subscriber's snapshot plus the
// events it then receives add up to the final table, so there is neither a
// gap nor an overlap between the two.
func TestTableSubscribeIsGapless(t *testing.T) {
	tb := newTable()
	pids := []etf.Pid{p1, p2, b1, b2}
	const subscribers, writes = 8, 2000

	type result struct {
		view []etf.Pid
		err  string
	}
	results := make(chan result, subscribers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range subscribers {
		wg.Go(func() {
			members, sub := tb.subscribe("g")
			defer tb.unsubscribe(sub)
			view := map[etf.Pid]int{}
			for _, p := range members {
				view[p]++
			}
			apply := func(ev Event) {
				for _, p := range ev.Pids {
					if ev.Kind == Joined {
						view[p]++
					} else {
						view[p]--
					}
				}
			}
		collect:
			for {
				select {
				case ev := <-sub.out:
					apply(ev)
				case <-stop:
					break collect
				}
			}
			// The writer is done: the events still queued must make the view
			// exactly the final table (an overlap or a gap never would).
			final := tb.members("g")
			for !sameCounts(view, final) {
				select {
				case ev := <-sub.out:
					apply(ev)
				case <-time.After(waitLimit):
					results <- result{err: "timed out: the view never matched"}
					return
				}
			}
			var out []etf.Pid
			for p, n := range view {
				for range n {
					out = append(out, p)
				}
			}
			results <- result{view: out}
		})
	}

	// One writer, as on the scope's process.
	held := map[etf.Pid]int{}
	for range writes {
		p := pids[rand.IntN(len(pids))]
		if held[p] > 0 && rand.IntN(2) == 0 {
			tb.remove("g", []etf.Pid{p}, false)
			held[p]--
		} else {
			tb.add("g", []etf.Pid{p, p}, false)
			held[p] += 2
		}
	}
	close(stop)
	wg.Wait()
	close(results)
	final := tb.members("g")
	for r := range results {
		require.Empty(t, r.err)
		assert.True(t, sameMembers(r.view, final), "a subscriber's view drifted")
	}
}

func sameCounts(view map[etf.Pid]int, members []etf.Pid) bool {
	want := map[etf.Pid]int{}
	for _, p := range members {
		want[p]++
	}
	for p, n := range view {
		if n != want[p] {
			return false
		}
	}
	for p, n := range want {
		if view[p] != n {
			return false
		}
	}
	return true
}

func TestRemoveOne(t *testing.T) {
	s, ok := removeOne([]etf.Pid{p1, p2, p1}, p1)
	require.True(t, ok)
	assert.True(t, sameMembers(s, []etf.Pid{p1, p2}))
	_, ok = removeOne(s, b1)
	assert.False(t, ok)
}
