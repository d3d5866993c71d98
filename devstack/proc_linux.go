package devstack

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// testsuite.DevServer does not expose its process, and we need it to notice
// an early exit and to kill a server that will not stop. So we look for it in
// /proc: a child of ours, named like the CLI binary, that was not there before
// the start. The name is the one /proc keeps for zombies too, unlike the
// command line, so a server that exits at once is still found.

// children returns the pids of our child processes running exe.
func children(exe string) map[int]bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	comm := commName(exe)
	found := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, name := procStat(pid); ppid == self && name == comm {
			found[pid] = true
		}
	}
	return found
}

// newChild returns a child running exe that is not in before, or 0.
func newChild(before map[int]bool, exe string) int {
	for pid := range children(exe) {
		if !before[pid] {
			return pid
		}
	}
	return 0
}

// commName is the process name Linux keeps: the binary's base name cut to
// 15 bytes.
func commName(exe string) string {
	name := filepath.Base(exe)
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// procStat reads the parent pid, the state letter and the name from
// /proc/<pid>/stat.
func procStat(pid int) (ppid int, state byte, name string) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, ""
	}
	// "pid (name) state ppid ...": the name may hold spaces and parentheses.
	open, end := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
	if open < 0 || end < open {
		return 0, 0, ""
	}
	fields := strings.Fields(string(data[end+1:]))
	if len(fields) < 2 || len(fields[0]) == 0 {
		return 0, 0, ""
	}
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, fields[0][0], string(data[open+1 : end])
}

// exited reports whether the process is gone or a zombie waiting to be reaped.
func exited(pid int) bool {
	_, state, _ := procStat(pid)
	return state == 0 || state == 'Z'
}

func kill(pid int) {
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// killAndReap ends a dev server whose DevServer handle was never returned, so
// nothing else will wait for it.
func killAndReap(pid int) {
	if pid == 0 {
		return
	}
	kill(pid)
	var ws syscall.WaitStatus
	_, _ = syscall.Wait4(pid, &ws, 0, nil)
}
