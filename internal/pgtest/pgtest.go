// Package pgtest gives tests a fresh PostgreSQL database with smartcopy's
// schema applied, dropped when the test ends. The server comes from
// SMARTCOPY_TEST_PG (an admin URL), else DATABASE_URL, else the local
// server on 127.0.0.1:5432.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"smartcopy/schema"
)

// AdminURL is the server tests create their databases on.
func AdminURL() string {
	for _, name := range []string{"SMARTCOPY_TEST_PG", "DATABASE_URL"} {
		if v := os.Getenv(name); v != "" {
			return v
		}
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// NewDatabase creates an empty database named after the test, applies the
// schema, and returns its URL and a pool on it. Both are dropped at cleanup.
func NewDatabase(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dbURL, drop, err := CreateDatabase(ctx, AdminURL(), "smartcopy_test")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		drop()
		t.Fatalf("pgtest: connect: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		drop()
	})
	if _, err := schema.Apply(ctx, pool); err != nil {
		t.Fatalf("pgtest: apply schema: %v", err)
	}
	return dbURL, pool
}

// CreateDatabase creates a database with a unique name starting with prefix
// on the server at adminURL and returns its URL and a function that drops it.
func CreateDatabase(ctx context.Context, adminURL, prefix string) (string, func(), error) {
	name := prefix + "_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", redact(adminURL), err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "create database "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(adminURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, adminURL)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, "drop database if exists "+pgx.Identifier{name}.Sanitize()+" with (force)")
	}
	return u.String(), drop, nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(database url)"
	}
	return u.Redacted()
}
