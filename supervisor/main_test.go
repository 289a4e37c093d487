package supervisor

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it started; a goroutine left behind (a child the
// supervisor forgot, a loop that never returned) fails the package.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
