package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// CPU accounting: on a 2-core machine the question "where does the time
// go" is mostly "which process burns the CPU". A window's CPU is read from
// getrusage (this process: publisher, workers, bench), /proc/<pid>/stat
// (the dev server; PostgreSQL backends of the bench database; PostgreSQL's
// background processes) and /proc/stat (the whole machine, so load from
// anything else shows as "other").

// clockTick is USER_HZ, the unit of /proc times; 100 on every Linux.
const clockTick = 10 * time.Millisecond

type cpuMeter struct {
	serverPID int    // 0 when the dev server is not ours
	dbName    string // the bench database, for its backends
	conn      *pgx.Conn
}

type cpuSnap struct {
	at     time.Time
	self   time.Duration
	server time.Duration
	pg     map[int]time.Duration // backends of our database
	pgBG   time.Duration         // PostgreSQL background processes
	busy   time.Duration         // machine, all cores
	total  time.Duration
}

// CPUProfile is a window's CPU time by process group, in milliseconds of
// CPU (two cores give up to 2,000 ms per second of wall time).
type CPUProfile struct {
	WallMS      float64 `json:"wall_ms"`
	BenchMS     float64 `json:"bench_process_ms"`
	ServerMS    float64 `json:"temporal_server_ms"`
	PostgresMS  float64 `json:"postgres_backends_ms"`
	PGBackMS    float64 `json:"postgres_background_ms"`
	MachineMS   float64 `json:"machine_busy_ms"`
	OtherMS     float64 `json:"other_ms"`
	Utilization float64 `json:"machine_utilization"`
}

func (m *cpuMeter) snap(ctx context.Context) cpuSnap {
	s := cpuSnap{at: time.Now(), pg: map[int]time.Duration{}}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if m.serverPID != 0 {
		s.server, _ = procCPU(m.serverPID)
	}
	if m.conn != nil {
		rows, err := m.conn.Query(ctx, `select pid, datname is not null and datname = $1
			from pg_stat_activity where (datname = $1 or backend_type <> 'client backend') and pid <> pg_backend_pid()`, m.dbName)
		if err == nil {
			for rows.Next() {
				var pid int
				var ours bool
				if rows.Scan(&pid, &ours) != nil {
					continue
				}
				d, err := procCPU(pid)
				if err != nil {
					continue
				}
				if ours {
					s.pg[pid] = d
				} else {
					s.pgBG += d
				}
			}
			rows.Close()
		}
	}
	s.busy, s.total = machineCPU()
	return s
}

func (m *cpuMeter) between(a, b cpuSnap) CPUProfile {
	p := CPUProfile{
		WallMS:    ms(b.at.Sub(a.at)),
		BenchMS:   ms(b.self - a.self),
		ServerMS:  ms(b.server - a.server),
		PGBackMS:  ms(max(b.pgBG-a.pgBG, 0)),
		MachineMS: ms(b.busy - a.busy),
	}
	var pg time.Duration
	for pid, end := range b.pg {
		pg += end - a.pg[pid] // a backend born in the window counts whole
	}
	p.PostgresMS = ms(pg)
	p.OtherMS = round3(max(p.MachineMS-p.BenchMS-p.ServerMS-p.PostgresMS-p.PGBackMS, 0))
	if total := b.total - a.total; total > 0 {
		p.Utilization = round3(float64(b.busy-a.busy) / float64(total))
	}
	return p
}

// procCPU is a process's user + system time.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields count from after its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// machineCPU is the busy and total time of all cores since boot.
func machineCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	var sum, idle int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest times are already in user
			break
		}
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return time.Duration(sum-idle) * clockTick, time.Duration(sum) * clockTick
}

// childPID finds a direct child of this process whose command line holds
// want (the dev server the bench started).
func childPID(want string) int {
	self := os.Getpid()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmd), want) {
			return pid
		}
	}
	return 0
}
