package serving

import (
	"syscall"
	"time"
)

// spinLead is the part of a precise sleep spent spinning instead of
// sleeping: the kernel's timer slack (50 µs by default) plus the wake-up
// make nanosleep ~100 µs late on the measured VMs.
const spinLead = 120 * time.Microsecond

// preciseSleep returns at deadline, within microseconds: nanosleep (Linux
// hrtimers, unlike Go's timers, are not rounded to milliseconds) until
// just before it, then a spin. The calling goroutine holds its thread for
// the sleep, which is why realClock only sleeps the last coarseLead of a
// timer this way.
func preciseSleep(deadline time.Time) {
	if r := time.Until(deadline) - spinLead; r > 0 {
		ts := syscall.NsecToTimespec(int64(r))
		for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
		}
	}
	for time.Now().Before(deadline) {
	}
}
