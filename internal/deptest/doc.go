// Package deptest holds Tandem's dependency test: the table of forbidden
// import arrows in deptest_test.go is the architecture's single written
// source, and the test fails when the code (its tests included) grows one of
// them. It reads the import graph with `go list -json ./...`.
//
// codemap_test.go holds the code map at the end of README.md to the same
// graph: every top-level folder listed, in dependency order.
//
// The package has no code of its own; nothing imports it.
package deptest
