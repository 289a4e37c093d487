//go:build race

package serving

// raceEnabled lets slow randomised tests run fewer cases under the race
// detector, which slows them down about tenfold.
const raceEnabled = true
