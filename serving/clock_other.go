//go:build !linux

package serving

import "time"

// preciseAfterFunc is time.AfterFunc where no timerfd exists: as late as
// the platform's timers are.
func preciseAfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
