package httpapi

import (
	"net/http"
	"time"
)

// runRequest is what every inference route does around its own work:
// admit the request (or refuse it, busy), count it in flight, run do,
// answer its error with fail (the route's error format), log server
// errors, and record the outcome and, for answers, the latency.
func (h *Handler) runRequest(w http.ResponseWriter, r *http.Request, rt *route, what string,
	do func(http.ResponseWriter, *http.Request, *route) (int, *requestError), fail func(http.ResponseWriter, *requestError)) {
	start := time.Now()
	if !h.admit() {
		e := busy()
		fail(w, e)
		rt.m.done(e.status, e, time.Since(start))
		return
	}
	defer h.release()
	rt.m.inFlight.Inc()
	defer rt.m.inFlight.Dec()
	status, e := do(w, r, rt)
	if e != nil {
		status = e.status
		fail(w, e)
		if status == http.StatusInternalServerError {
			h.log.Warn("httpapi: "+what+" failed", "serving", rt.Name, "status", status, "reason", e.reason, "error", e.err)
		}
	}
	rt.m.done(status, e, time.Since(start))
	if e == nil {
		rt.live.observe(time.Since(start)) // the page's percentiles: answers, not errors
	}
}
