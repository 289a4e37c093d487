// Package tests holds ergonx's integration tests: servings across several
// ergo nodes on loopback (in this test binary and in separate OS
// processes), faults (nodes killed under load, servings stopped mid-call),
// ergo's distribution traps, and the distributed benchmark.
package tests
