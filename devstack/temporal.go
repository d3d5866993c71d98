package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/testsuite"
)

// TemporalOptions configures a Temporal dev server.
type TemporalOptions struct {
	SearchAttributes []string // registered as Keyword
	UI               bool     // Web UI on (run command) or off (tests)
	UIPort           int      // 0 = frontend port + 1000 (8233 for 7233) if free, else any free port
	Port             int      // frontend gRPC port; 0 = pick a free port
	DBFile           string   // "" = in memory; else a SQLite file that survives restarts
	Namespace        string   // default "default"
	LogLevel         string   // server log level, default "error"
	Stdout, Stderr   io.Writer
}

// Temporal is a running dev server.
type Temporal struct {
	Address   string // host:port of the frontend
	Namespace string
	UIAddress string // http URL of the Web UI, "" when it is off

	opts   TemporalOptions // resolved: ports fixed so Restart reuses them
	cli    string
	mu     sync.Mutex
	server *testsuite.DevServer
	pid    int // 0 when the process could not be identified (non-Linux)
	gate   *gatedWriter
}

// tuningFlags cut the delay between a signal and the activity it schedules
// from about 100 ms to about 10 ms on the dev server.
var tuningFlags = []string{
	"--dynamic-config-value", "history.transferProcessorMaxPollRPS=1000",
	"--dynamic-config-value", "system.enableActivityEagerExecution=true",
}

// startMu serializes the start of dev servers within this process.
var startMu sync.Mutex

const (
	readyTimeout = 90 * time.Second
	stopTimeout  = 20 * time.Second
)

// StartTemporal starts a dev server from the pinned Temporal CLI and returns
// once its namespace answers and every search attribute is registered as
// Keyword.
func StartTemporal(ctx context.Context, opts TemporalOptions) (*Temporal, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "error"
	}
	if opts.Port == 0 {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		opts.Port = p
	} else if err := checkPortFree(opts.Port); err != nil {
		return nil, fmt.Errorf("start Temporal: %w (is another Temporal server running?)", err)
	}
	if opts.UI {
		// Fix the UI port now so that a restart serves the UI at the same address.
		switch {
		case opts.UIPort != 0:
		case opts.Port+1000 <= 65535 && checkPortFree(opts.Port+1000) == nil:
			opts.UIPort = opts.Port + 1000
		default:
			p, err := freePort()
			if err != nil {
				return nil, err
			}
			opts.UIPort = p
		}
	}
	if opts.DBFile != "" {
		if err := os.MkdirAll(filepath.Dir(opts.DBFile), 0o755); err != nil {
			return nil, fmt.Errorf("start Temporal: directory for the DB file: %w", err)
		}
	}
	cliPath, err := TemporalCLI(ctx, opts.Stderr)
	if err != nil {
		return nil, err
	}
	t := &Temporal{
		Address:   net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)),
		Namespace: opts.Namespace,
		opts:      opts,
		cli:       cliPath,
	}
	if opts.UI {
		t.UIAddress = "http://localhost:" + strconv.Itoa(opts.UIPort)
	}
	if err := t.start(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Temporal) start(ctx context.Context) error {
	began := time.Now()
	stderr := &tail{max: 4096}
	if err := t.launch(ctx, stderr); err != nil {
		return err
	}
	t.mu.Lock()
	c := t.server.Client()
	t.mu.Unlock()
	readyCtx, cancel := context.WithTimeout(ctx, readyTimeout-time.Since(began))
	defer cancel()
	if err := waitNamespace(readyCtx, c, t.opts.Namespace, t.opts.SearchAttributes); err != nil {
		_ = t.Stop()
		return fmt.Errorf("Temporal dev server on %s not ready: %w%s", t.Address, err, stderr.suffix())
	}
	return nil
}

// launch starts the dev server process and returns once its frontend answers.
// The end of the server's stderr is kept in stderr for error messages.
func (t *Temporal) launch(ctx context.Context, stderr *tail) error {
	opts := t.opts
	args := append([]string(nil), tuningFlags...)
	for _, name := range opts.SearchAttributes {
		args = append(args, "--search-attribute", name+"=Keyword")
	}
	userErr := opts.Stderr
	if userErr == nil {
		userErr = os.Stderr
	}
	// Shutting down, the server logs every request it cancels as an error;
	// that is noise, so its output stops at Stop.
	gate := &gatedWriter{w: userErr}
	stdout := opts.Stdout
	if stdout == nil {
		// The CLI prints a banner with its addresses; StartTemporal's caller
		// prints the ones that matter.
		stdout = io.Discard
	}
	devOpts := testsuite.DevServerOptions{
		ExistingPath: t.cli,
		ClientOptions: &client.Options{
			HostPort:  t.Address,
			Namespace: opts.Namespace,
			Logger:    sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(userErr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
		},
		DBFilename: opts.DBFile,
		EnableUI:   opts.UI,
		LogLevel:   opts.LogLevel,
		ExtraArgs:  args,
		Stdout:     stdout,
		Stderr:     io.MultiWriter(gate, stderr),
	}
	if opts.UI {
		devOpts.UIPort = strconv.Itoa(opts.UIPort)
	}

	// StartDevServer keeps dialing for a minute even when the process has
	// already exited (bad flag, unusable DB file); watch the process and
	// give up as soon as it is gone. Starts are serialized so that the one
	// new child process is this start's.
	startMu.Lock()
	defer startMu.Unlock()
	before := children(t.cli)
	startCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pidCh := make(chan int, 1)
	watchDone := make(chan struct{})
	go func() {
		pid := 0
		for {
			select {
			case <-watchDone:
				pidCh <- pid
				return
			case <-time.After(50 * time.Millisecond):
			}
			if pid == 0 {
				pid = newChild(before, t.cli)
			}
			if pid != 0 && exited(pid) {
				cancel(errors.New("the dev server exited during startup"))
			}
		}
	}()
	srv, err := testsuite.StartDevServer(startCtx, devOpts)
	close(watchDone)
	pid := <-pidCh
	if pid == 0 {
		pid = newChild(before, t.cli)
	}
	if err != nil {
		if cause := context.Cause(startCtx); cause != nil && ctx.Err() == nil {
			err = cause
			// Let the last of the server's stderr through the pipe; it says why.
			time.Sleep(100 * time.Millisecond)
		}
		killAndReap(pid)
		return fmt.Errorf("start Temporal dev server on %s: %w%s", t.Address, err, stderr.suffix())
	}
	t.mu.Lock()
	t.server, t.pid, t.gate = srv, pid, gate
	t.mu.Unlock()
	return nil
}

// waitNamespace polls until the namespace answers and lists every search
// attribute as Keyword. A search attribute of another type (left in a DB file
// by an older run) is reported at once, since waiting will not fix it.
func waitNamespace(ctx context.Context, c client.Client, namespace string, attrs []string) error {
	var last error
	for {
		done, err := namespaceReady(ctx, c, namespace, attrs)
		if done {
			return err
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w; last: %v", ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func namespaceReady(ctx context.Context, c client.Client, namespace string, attrs []string) (done bool, err error) {
	callCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.WorkflowService().DescribeNamespace(callCtx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace}); err != nil {
		return false, fmt.Errorf("describe namespace %q: %w", namespace, err)
	}
	resp, err := c.OperatorService().ListSearchAttributes(callCtx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return false, fmt.Errorf("list search attributes: %w", err)
	}
	for _, name := range attrs {
		typ, ok := resp.GetCustomAttributes()[name]
		if !ok {
			return false, fmt.Errorf("search attribute %s not registered yet", name)
		}
		if typ != enumspb.INDEXED_VALUE_TYPE_KEYWORD {
			return true, fmt.Errorf("search attribute %s is registered as %s, want Keyword (remove the DB file to start over)", name, typ)
		}
	}
	return true, nil
}

// Stop stops the server and waits for it to exit, killing it if it does not
// stop within 20 seconds. Stopping a stopped server is a no-op.
func (t *Temporal) Stop() error {
	t.mu.Lock()
	srv, pid, gate := t.server, t.pid, t.gate
	t.server, t.pid, t.gate = nil, 0, nil
	t.mu.Unlock()
	if srv == nil {
		return nil
	}
	gate.close()
	srv.Client().Close()
	done := make(chan error, 1)
	go func() { done <- srv.Stop() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("stop Temporal dev server on %s: %w", t.Address, err)
		}
		return nil
	case <-time.After(stopTimeout):
		if pid == 0 {
			return fmt.Errorf("stop Temporal dev server on %s: no exit after %s and its process is unknown", t.Address, stopTimeout)
		}
		kill(pid)
		<-done
		return fmt.Errorf("stop Temporal dev server on %s: killed after no exit in %s", t.Address, stopTimeout)
	}
}

// Restart stops the server (gracefully, with an interrupt) and starts it
// again on the same ports and DB file. An in-memory server comes back empty.
func (t *Temporal) Restart(ctx context.Context) error {
	if err := t.Stop(); err != nil {
		return err
	}
	// A fresh lookup: the build cache may have moved the binary.
	cliPath, err := TemporalCLI(ctx, t.opts.Stderr)
	if err != nil {
		return err
	}
	t.cli = cliPath
	return t.start(ctx)
}

// freePort asks the kernel for a free TCP port on the loopback interface.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func checkPortFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d is in use: %w", port, err)
	}
	return l.Close()
}

// gatedWriter passes writes through until closed, then drops them.
type gatedWriter struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gatedWriter) close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = w.buf[len(w.buf)-w.max:]
	}
	return len(p), nil
}

// suffix formats the kept output for the end of an error message.
func (w *tail) suffix() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := strings.TrimSpace(string(w.buf))
	if s == "" {
		return ""
	}
	return "; server output: " + s
}
