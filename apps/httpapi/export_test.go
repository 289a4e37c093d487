package httpapi

import "time"

// SetTestHookShutdown makes the servers that apps start from now on call
// f once shutdown has closed their listener, until restore is called.
func SetTestHookShutdown(f func()) (restore func()) {
	old := testHookShutdown
	testHookShutdown = f
	return func() { testHookShutdown = old }
}

// SetLiveClock makes the live figures read time from f until restore is
// called.
func SetLiveClock(f func() time.Time) (restore func()) {
	old := nowFunc
	nowFunc = f
	return func() { nowFunc = old }
}
