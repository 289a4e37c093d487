// Package readme holds the tests that keep the repository's README.md
// true: every Go snippet in it compiles against the code as it is, and
// the new user's programs of "The Go API" (the typed dense layer without
// a node, over HTTP, and across two node processes) run and answer what
// the README says they answer.
package readme
