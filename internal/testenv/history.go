package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
)

// History reads one run's full event history from the server.
func History(ctx context.Context, c client.Client, workflowID, runID string) (*historypb.History, error) {
	it := c.GetWorkflowHistory(ctx, workflowID, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("history of %s/%s: %w", workflowID, runID, err)
		}
		h.Events = append(h.Events, ev)
	}
	return h, nil
}

// RecordEnv names the environment variable that makes tests write the
// histories they produce into workflows/testdata, for the replay tests.
const RecordEnv = "SMARTCOPY_RECORD_HISTORIES"

// MaybeRecord writes h as JSON (the format `temporal workflow show -o json`
// writes and the replayer reads) to workflows/testdata/<name>.json when
// SMARTCOPY_RECORD_HISTORIES=1.
func MaybeRecord(h *historypb.History, name string) error {
	if os.Getenv(RecordEnv) != "1" {
		return nil
	}
	data, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		return err
	}
	dir, err := testdataDir()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".json"), append(data, '\n'), 0o644)
}

func testdataDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "workflows", "testdata"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
