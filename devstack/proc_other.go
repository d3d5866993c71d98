//go:build !linux

package devstack

// Outside Linux the dev server's process is not identified: an early exit is
// noticed only when StartDevServer gives up, and Stop cannot kill a server
// that ignores the interrupt.

func children(exe string) map[int]bool { return nil }

func newChild(before map[int]bool, exe string) int { return 0 }

func exited(pid int) bool { return false }

func kill(pid int) {}

func killAndReap(pid int) {}
