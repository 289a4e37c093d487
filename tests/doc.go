// Package tests holds ergonx's integration tests: servings across several
// ergo nodes on loopback (in this test binary and in separate OS
// processes), faults (nodes stopped or killed under load, servings stopped
// mid-call, stray and malformed messages), ergo's distribution traps, and
// the distributed benchmark.
//
// Layout: main_test.go starts every node of the package before any test
// runs (a pool; ergo races when a node starts while others connect) and
// checks for leaked goroutines once they have all stopped;
// fixtures_test.go has the doubler serving most tests run;
// distributed_test.go ports Nx.Serving's distributed tests (checklist
// items 55-58, 61, 66); faults_test.go loses nodes (stopped, SIGKILLed in
// a helper process, a wrong cookie); traps_test.go and protocol_test.go
// pin ergo v1.999.224's traps and ergonx's protections against them;
// helper_test.go runs this binary again as a helper process.
package tests
