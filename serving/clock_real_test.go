package serving

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// The real clock's stop prevents a call that has not started, whether the
// coarse timer has fired or not.
func TestRealClockStop(t *testing.T) {
	fired := make(chan struct{}, 1)
	stop := realClock{}.AfterFunc(time.Hour, func() { fired <- struct{}{} })
	assert.True(t, stop())
	assert.False(t, stop(), "a second stop prevents nothing more")

	stop = realClock{}.AfterFunc(0, func() { fired <- struct{}{} })
	<-fired
	assert.False(t, stop(), "stop after the call reports that it did not prevent it")
}
