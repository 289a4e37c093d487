// Package readme holds the tests that keep the repository's README.md
// true: every Go snippet in it compiles against the code as it is.
package readme
