package serving

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The real clock's stop prevents a call that has not started, and reports
// whether it did.
func TestRealClockStop(t *testing.T) {
	fired := make(chan struct{}, 1)
	stop := realClock{}.AfterFunc(time.Hour, func() { fired <- struct{}{} })
	assert.True(t, stop())
	assert.False(t, stop(), "a second stop prevents nothing more")

	stop = realClock{}.AfterFunc(0, func() { fired <- struct{}{} })
	<-fired
	assert.False(t, stop(), "stop after the call reports that it did not prevent it")
}

// Timers fire in deadline order whatever the order they were armed in,
// each once; stopped ones never.
func TestRealClockOrderAndStops(t *testing.T) {
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	var stops []func() bool
	for i, ms := range []int{30, 10, 20, 15, 25} {
		wg.Add(1)
		stops = append(stops, realClock{}.AfterFunc(time.Duration(ms)*time.Millisecond, func() {
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			wg.Done()
		}))
	}
	require.True(t, stops[3](), "the 15 ms timer is stopped before it fires")
	wg.Done()
	wg.Wait()
	assert.Equal(t, []int{1, 2, 4, 0}, order)
}
