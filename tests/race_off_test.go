//go:build !race

package tests

// raceEnabled is true when the race detector is on.
const raceEnabled = false
