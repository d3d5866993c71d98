package schema_test

import (
	"context"
	"testing"

	"smartcopy/internal/pgtest"
	"smartcopy/schema"
)

// Applying the schema a second time runs nothing and fails nothing.
func TestApplyIsIdempotent(t *testing.T) {
	_, pool := pgtest.NewDatabase(t)
	ran, err := schema.Apply(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if len(ran) != 0 {
		t.Fatalf("second apply ran %v", ran)
	}
	var n int
	if err := pool.QueryRow(context.Background(), `select count(*) from instruments`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("instruments: %d, %v", n, err)
	}
}
