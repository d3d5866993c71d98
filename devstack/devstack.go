// Package devstack runs the local infrastructure that smartcopy's run
// command, tests and benchmarks share: a Temporal dev server from the Temporal
// CLI pinned in tools/go.mod, and a PostgreSQL server (an existing one, or a
// private one kept in <repo>/.devdata).
package devstack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ModulePath is the module whose go.mod marks the repository root.
const ModulePath = "smartcopy"

// TemporalCLIEnv names an environment variable that, when set, is used as the
// Temporal CLI instead of building the pinned one (e.g. in a container image
// that ships the binary).
const TemporalCLIEnv = "SMARTCOPY_TEMPORAL_CLI"

// RepoRoot finds the module root: the nearest directory at or above the
// working directory whose go.mod declares module "smartcopy".
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for dir := wd; ; {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(data) == ModulePath {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find repository root: no go.mod of module %q at or above %s", ModulePath, wd)
		}
		dir = parent
	}
}

// modulePath reads the module directive of a go.mod file. A full go.mod
// parser (golang.org/x/mod) would be a dependency for one line.
func modulePath(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], "\"`")
		}
	}
	return ""
}

var cli struct {
	sync.Mutex
	path string
}

// buildNoteAfter is how long the go command may take before we tell the user
// it is building; a cached lookup takes about a second.
const buildNoteAfter = 2 * time.Second

// TemporalCLI returns the path of the pinned Temporal CLI, building it through
// the tools module if needed. The go command caches the binary, so only the
// first call on a machine is slow; log gets one line if it is.
func TemporalCLI(ctx context.Context, log io.Writer) (string, error) {
	if p := os.Getenv(TemporalCLIEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", TemporalCLIEnv, p, err)
		}
		return p, nil
	}
	cli.Lock()
	defer cli.Unlock()
	if cli.path != "" {
		// The build cache may have been trimmed since.
		if _, err := os.Stat(cli.path); err == nil {
			return cli.path, nil
		}
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the Temporal CLI is built with the go command, which is not on PATH: %w", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, goBin, "-C", filepath.Join(root, "tools"), "tool", "-n", "temporal")
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("build the Temporal CLI: %w", err)
	}
	note := time.AfterFunc(buildNoteAfter, func() {
		if log != nil {
			fmt.Fprintln(log, "building the pinned Temporal CLI (first time takes a few minutes)")
		}
	})
	err = cmd.Wait()
	note.Stop()
	if err != nil {
		return "", fmt.Errorf("build the Temporal CLI (go -C tools tool -n temporal): %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	path := strings.TrimSpace(stdout.String())
	if path == "" {
		return "", errors.New("build the Temporal CLI: go tool -n printed no path")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("build the Temporal CLI: %w", err)
	}
	cli.path = path
	return path, nil
}
