package main

import (
	"context"
	"flag"
	"os"
	"testing"
	"time"
)

var full = flag.Bool("chaos.full", false, "run the full fault suite (as make chaos does) instead of the short one")

// TestChaos runs the short fault suite (the full one with -chaos.full or
// SMARTCOPY_CHAOS=full) and fails on any problem it finds.
func TestChaos(t *testing.T) {
	seed := time.Now().UnixNano() % 1_000_000
	cfg := Short(seed)
	budget := 90 * time.Second
	if *full || os.Getenv("SMARTCOPY_CHAOS") == "full" {
		cfg, budget = Full(seed), 15*time.Minute
	}
	cfg.Log, cfg.Verbose = os.Stdout, testing.Verbose()
	ctx, cancel := context.WithTimeout(context.Background(), budget+time.Minute)
	defer cancel()
	f, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.Print(os.Stdout)
	for _, p := range f.Problems {
		t.Error(p)
	}
	if f.Elapsed > budget {
		t.Errorf("the %s suite took %s, more than its %s budget", cfg.Name, f.Elapsed.Round(time.Second), budget)
	}
}
