package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultLocalURL is the server EnsurePostgres uses when DATABASE_URL is unset
// and something answers on the standard port.
const DefaultLocalURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Postgres is a PostgreSQL server smartcopy can create databases on.
type Postgres struct {
	AdminURL string // superuser URL on the maintenance database "postgres"
	Private  bool   // a server of our own, data in <repo>/.devdata/pg

	pgCtl   string // pg_ctl binary, for Stop
	dataDir string
	osUser  string // run pg_ctl as this user ("" = ourselves)
	started bool   // this process started it, so Stop stops it
}

// EnsurePostgres finds or starts a PostgreSQL server, in this order: the
// server of DATABASE_URL; one answering on 127.0.0.1:5432; a private server
// started from the installed PostgreSQL binaries with its data in
// <root>/.devdata/pg (kept between runs).
func EnsurePostgres(ctx context.Context, root string, log io.Writer) (*Postgres, error) {
	if log == nil {
		log = io.Discard
	}
	if raw := os.Getenv("DATABASE_URL"); raw != "" {
		admin, err := withDatabase(raw, "postgres")
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
		if err := ping(ctx, admin); err != nil {
			return nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
		return &Postgres{AdminURL: admin}, nil
	}
	err := ping(ctx, DefaultLocalURL)
	if err == nil {
		return &Postgres{AdminURL: DefaultLocalURL}, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	p, perr := startPrivate(ctx, filepath.Join(root, ".devdata"), log)
	if errors.Is(perr, errNoBinaries) {
		return nil, errors.New("no PostgreSQL found: set DATABASE_URL, start a server on localhost:5432, or install PostgreSQL (apt-get install postgresql)")
	}
	if perr != nil {
		return nil, fmt.Errorf("no PostgreSQL on 127.0.0.1:5432 (%v), and the private one failed: %w", err, perr)
	}
	return p, nil
}

// ping connects once, briefly: a server that does not answer in a few
// seconds is treated as absent.
func ping(ctx context.Context, dbURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact(dbURL), err)
	}
	return conn.Close(ctx)
}

var errNoBinaries = errors.New("no PostgreSQL binaries (initdb, pg_ctl) found")

// startPrivate runs a server from dir/pg, creating the cluster on first use.
// A server already running there (left by an earlier run, or another process
// using it now) is reused and not stopped by Stop.
func startPrivate(ctx context.Context, dir string, log io.Writer) (*Postgres, error) {
	dataDir := filepath.Join(dir, "pg")
	wantVersion := ""
	if b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		wantVersion = strings.TrimSpace(string(b))
	}
	bin, err := findPGBin(wantVersion)
	if err != nil {
		return nil, err
	}
	p := &Postgres{Private: true, pgCtl: filepath.Join(bin, "pg_ctl"), dataDir: dataDir}

	// PostgreSQL refuses to run as root; run it as the postgres OS user, which
	// then has to own its directories.
	var owner *user.User
	if os.Geteuid() == 0 {
		owner, err = user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL must run as another user, and there is no \"postgres\" OS user: %w", err)
		}
		p.osUser = owner.Username
	}
	// Socket and log live beside the data, where the server's user can write.
	runDir := filepath.Join(dir, "pgrun")
	for _, d := range []string{dir, runDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if owner != nil {
		if err := chown(runDir, owner); err != nil {
			return nil, err
		}
	}

	if wantVersion == "" {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", dataDir, err)
		}
		if owner != nil {
			if err := chown(dataDir, owner); err != nil {
				return nil, err
			}
		}
		fmt.Fprintf(log, "creating a private PostgreSQL cluster in %s\n", dataDir)
		// --no-sync: this is a development cache, and skipping fsync makes
		// initdb take a second instead of several.
		if out, err := p.run(ctx, filepath.Join(bin, "initdb"), "-D", dataDir, "-U", "postgres", "--auth=trust",
			"-E", "UTF8", "--no-locale", "--no-sync"); err != nil {
			return nil, fmt.Errorf("initdb %s: %w: %s", dataDir, err, out)
		}
	}

	if port, ok := p.runningPort(ctx); ok {
		fmt.Fprintf(log, "reusing the private PostgreSQL already running on port %d\n", port)
		p.AdminURL = localURL(port)
		return p, ping(ctx, p.AdminURL)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	sockDir := runDir
	if len(sockDir)+len("/.s.PGSQL.65535") > 100 {
		// Unix socket paths are limited to about 100 bytes; TCP is enough.
		sockDir = ""
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s", port, shellQuote(sockDir))
	if out, err := p.run(ctx, p.pgCtl, "-D", dataDir, "-l", filepath.Join(runDir, "postgres.log"),
		"-w", "-t", "60", "-o", opts, "start"); err != nil {
		return nil, fmt.Errorf("pg_ctl start (log in %s): %w: %s", filepath.Join(runDir, "postgres.log"), err, out)
	}
	p.started = true
	p.AdminURL = localURL(port)
	fmt.Fprintf(log, "started a private PostgreSQL on 127.0.0.1:%d (data in %s)\n", port, dataDir)
	if err := ping(ctx, p.AdminURL); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// runningPort reports the port of a server already running on the data dir.
func (p *Postgres) runningPort(ctx context.Context) (int, bool) {
	if _, err := p.run(ctx, p.pgCtl, "-D", p.dataDir, "status"); err != nil {
		return 0, false
	}
	// Line 4 of postmaster.pid is the port.
	b, err := os.ReadFile(filepath.Join(p.dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, false
	}
	port, err := strconv.Atoi(strings.TrimSpace(lines[3]))
	return port, err == nil
}

// Stop stops the server if this process started it; a shared server, or a
// private one that was already running, is left alone.
func (p *Postgres) Stop() error {
	if !p.started {
		return nil
	}
	p.started = false
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := p.run(ctx, p.pgCtl, "-D", p.dataDir, "-m", "fast", "-w", "stop"); err != nil {
		// Ctrl-C reaches the server too when it shares our process group;
		// then it is already down, which is what Stop wants.
		if _, running := p.runningPort(ctx); !running {
			return nil
		}
		return fmt.Errorf("pg_ctl stop %s: %w: %s", p.dataDir, err, out)
	}
	return nil
}

// EnsureDatabase creates database name if it does not exist and returns its
// URL. Concurrent calls for the same name are safe.
func (p *Postgres) EnsureDatabase(ctx context.Context, name string) (string, error) {
	dbURL, err := withDatabase(p.AdminURL, name)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, p.AdminURL)
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(p.AdminURL), err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "select exists (select 1 from pg_database where datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return dbURL, nil
	}
	if _, err := conn.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		// Another caller may have created it between the look-up and here.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
			return dbURL, nil
		}
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return dbURL, nil
}

// findPGBin returns the directory holding initdb and pg_ctl: the given major
// version's if installed (an existing cluster needs it), else the one on
// PATH, else the newest under /usr/lib/postgresql (Debian and Ubuntu keep
// them off PATH).
func findPGBin(version string) (string, error) {
	has := func(dir string) bool {
		for _, name := range []string{"initdb", "pg_ctl"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				return false
			}
		}
		return true
	}
	if version != "" {
		if dir := filepath.Join("/usr/lib/postgresql", version, "bin"); has(dir) {
			return dir, nil
		}
	}
	if path, err := exec.LookPath("pg_ctl"); err == nil && has(filepath.Dir(path)) {
		return filepath.Dir(path), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	return "", errNoBinaries
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// run runs a PostgreSQL program, as p.osUser when set, and returns its
// combined output.
func (p *Postgres) run(ctx context.Context, prog string, args ...string) (string, error) {
	var cmd *exec.Cmd
	if p.osUser == "" {
		cmd = exec.CommandContext(ctx, prog, args...)
	} else if runuser, err := exec.LookPath("runuser"); err == nil {
		cmd = exec.CommandContext(ctx, runuser, append([]string{"-u", p.osUser, "--", prog}, args...)...)
	} else {
		line := shellQuote(prog)
		for _, a := range args {
			line += " " + shellQuote(a)
		}
		cmd = exec.CommandContext(ctx, "su", p.osUser, "-s", "/bin/sh", "-c", line)
	}
	// The server's user may not be able to read our working directory.
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func chown(path string, u *user.User) error {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("uid of %s: %w", u.Username, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("gid of %s: %w", u.Username, err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		return fmt.Errorf("give %s to %s: %w", path, u.Username, err)
	}
	return nil
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func localURL(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

// withDatabase returns dbURL pointing at database name on the same server
// with the same credentials and parameters.
func withDatabase(dbURL, name string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%s is not a postgres:// URL", redact(dbURL))
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(database url)"
	}
	return u.Redacted()
}
