//go:build race

package digits

const raceEnabled = true
