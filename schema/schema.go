// Package schema holds smartcopy's PostgreSQL schema as ordered SQL
// migrations (NNNN_name.sql) and applies them. Applying is idempotent: each
// migration runs once, in its own transaction, recorded in
// schema_migrations; concurrent appliers serialize on an advisory lock.
package schema

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed *.sql
var files embed.FS

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, err
	}
	var out []Migration
	for _, name := range names {
		prefix, _, ok := strings.Cut(name, "_")
		version, err := strconv.Atoi(prefix)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number and '_'", name)
		}
		body, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: version, Name: name, SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", out[i-1].Name, out[i].Name, out[i].Version)
		}
	}
	return out, nil
}

// advisoryLockKey serializes concurrent Apply calls (two workers starting at
// once) on one database.
const advisoryLockKey = 7_420_001

// Apply runs every migration not yet applied and returns the names it ran.
func Apply(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	migrations, err := Migrations()
	if err != nil {
		return nil, err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("schema: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `select pg_advisory_lock($1)`, advisoryLockKey); err != nil {
		return nil, fmt.Errorf("schema: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `select pg_advisory_unlock($1)`, advisoryLockKey)

	if _, err := conn.Exec(ctx, `create table if not exists schema_migrations (
		version integer primary key,
		name text not null,
		applied_at timestamptz not null default now())`); err != nil {
		return nil, fmt.Errorf("schema: create schema_migrations: %w", err)
	}
	var ran []string
	for _, m := range migrations {
		var done bool
		if err := conn.QueryRow(ctx, `select exists(select 1 from schema_migrations where version = $1)`, m.Version).Scan(&done); err != nil {
			return ran, fmt.Errorf("schema: read schema_migrations: %w", err)
		}
		if done {
			continue
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			return ran, err
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			tx.Rollback(ctx)
			return ran, fmt.Errorf("schema: apply %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `insert into schema_migrations (version, name) values ($1, $2)`, m.Version, m.Name); err != nil {
			tx.Rollback(ctx)
			return ran, fmt.Errorf("schema: record %s: %w", m.Name, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return ran, fmt.Errorf("schema: commit %s: %w", m.Name, err)
		}
		ran = append(ran, m.Name)
	}
	return ran, nil
}
