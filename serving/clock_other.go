//go:build !linux

package serving

import "time"

// preciseSleep sleeps until deadline with Go's timer (other platforms).
func preciseSleep(deadline time.Time) {
	time.Sleep(time.Until(deadline))
}
