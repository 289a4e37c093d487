package httpapi

// SetTestHookShutdown makes the servers that apps start from now on call
// f once shutdown has closed their listener, until restore is called.
func SetTestHookShutdown(f func()) (restore func()) {
	old := testHookShutdown
	testHookShutdown = f
	return func() { testHookShutdown = old }
}
