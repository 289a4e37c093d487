package serving

import (
	"flag"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind, and makes the
// property test run at least 10,000 random schedules (1,000 under the race
// detector) unless -rapid.checks or RAPID_CHECKS says otherwise.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("rapid.checks"); f != nil && os.Getenv("RAPID_CHECKS") == "" && !flagSet("rapid.checks") {
		n := "10000"
		if raceEnabled {
			n = "1000"
		}
		_ = f.Value.Set(n)
	}
	goleak.VerifyTestMain(m)
}

func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
