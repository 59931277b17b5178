//go:build !race

package teardown

const raceEnabled = false
