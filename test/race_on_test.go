//go:build race

package test

// raceEnabled: the tests run with -race, so the server under test is built
// with it too and a data race in sekisho fails its exit status.
const raceEnabled = true
