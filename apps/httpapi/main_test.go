package httpapi_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: no server,
// connection or serving of a test outlives it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
