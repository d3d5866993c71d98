package workflows_test

import (
	"log/slog"
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"smartcopy/system"
)

// TestReplayRecordedHistories replays every history recorded from the real
// dev server (workflows/testdata, written by the e2e tests with
// SMARTCOPY_RECORD_HISTORIES=1) against the current workflow code. A change
// that would break a running relationship (a command added, removed or
// reordered without workflow.GetVersion) fails here.
func TestReplayRecordedHistories(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no recorded histories in workflows/testdata")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			system.RegisterWorkflows(r, system.Defaults().Workflow)
			if err := r.ReplayWorkflowHistoryFromJSONFile(log.NewStructuredLogger(slog.New(slog.DiscardHandler)), file); err != nil {
				t.Fatalf("%s no longer replays: %v", file, err)
			}
		})
	}
}
