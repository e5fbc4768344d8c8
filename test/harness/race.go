package harness

// RaceEnabled reports whether the tests run with the race detector (whose
// shadow memory and per-goroutine overhead inflate memory figures several
// times).
func RaceEnabled() bool { return raceEnabled }
