package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"

	"smartcopy/api"
	"smartcopy/copytrade"
	"smartcopy/internal/testenv"
	"smartcopy/workflows"
)

// waitFind polls a visibility query (visibility is eventually consistent)
// until want holds.
func waitFind(t *testing.T, e *testenv.Env, query string, want func([]api.Found) bool) []api.Found {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		found, err := e.API.Find(context.Background(), query)
		if err == nil && want(found) {
			return found
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %s: not as expected after 30s: %+v, %v", query, found, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The operator's view: the custom search attributes follow every status
// change, so `TraderID = "t" AND CopyStatus = "active"` lists exactly the
// trader's live followers; the workflow's details say in words who follows
// whom with the fund and positions.
func TestOperatorSearchAttributesAndDetails(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, a, b := e.ID("trader"), e.ID("ann"), e.ID("ben")
	setup(t, e, trader, map[string]string{a: "2000", b: "2000"})
	for _, f := range []string{a, b} {
		_, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: f, TraderID: trader, Investment: d("1000")})
		must(t, err)
	}
	publish(t, e, openEv(e, trader, "o1", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "5", "1000", "60000", "8.33"), a, b)
	active := fmt.Sprintf(`TraderID = %q AND CopyStatus = "active"`, trader)
	waitFind(t, e, active, func(f []api.Found) bool { return len(f) == 2 })

	_, err := e.API.Unfollow(ctx, b, trader)
	must(t, err)
	found := waitFind(t, e, active, func(f []api.Found) bool { return len(f) == 1 })
	if found[0].FollowerID != a || found[0].WorkflowID != workflows.WorkflowID(a, trader) {
		t.Errorf("live follower: %+v", found[0])
	}
	waitFind(t, e, fmt.Sprintf(`TraderID = %q AND CopyStatus = "ended"`, trader), func(f []api.Found) bool {
		return len(f) == 1 && f[0].FollowerID == b
	})

	// The details an operator sees in the UI, in words: the UI reads them
	// through the built-in metadata query.
	resp, err := e.Client.QueryWorkflow(ctx, workflows.WorkflowID(a, trader), "", "__temporal_workflow_metadata")
	must(t, err)
	var meta sdkpb.WorkflowMetadata
	must(t, resp.Get(&meta))
	details := meta.GetCurrentDetails()
	for _, want := range []string{a + "** copies **" + trader, "active", "Investment 1000.00", "BTC-USDT-SWAP long 0.83"} {
		if !strings.Contains(details, want) {
			t.Errorf("details %q do not say %q", details, want)
		}
	}
	desc, err := e.Client.DescribeWorkflow(ctx, workflows.WorkflowID(a, trader), "")
	must(t, err)
	if summary, err := desc.GetStaticSummary(); err != nil || summary != a+" copies "+trader {
		t.Errorf("summary %q, %v", summary, err)
	}
}

// A late trader event for a relationship that has ended never starts it
// again (signal-with-start with RejectDuplicate), even when the projection
// still lists it as live.
func TestPublishNeverRestartsAnEndedRelationship(t *testing.T) {
	ctx := context.Background()
	e := testenv.New(t, server, testenv.Options{})
	trader, f := e.ID("trader"), e.ID("gone")
	setup(t, e, trader, map[string]string{f: "2000"})
	res, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: f, TraderID: trader, Investment: d("1000")})
	must(t, err)
	_, err = e.API.Unfollow(ctx, f, trader)
	must(t, err)
	e.WaitClosed(ctx, f, trader)
	// Make the projection stale, as if the look-up raced the unfollow.
	_, err = e.Pool.Exec(ctx, `update relationships set status = 'active' where id = $1`, res.RelationshipID)
	must(t, err)

	rep, err := e.Publisher.Publish(ctx, openEv(e, trader, "late", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "5", "1000", "60000", "8.33"))
	must(t, err)
	if rep.Delivered != 0 || rep.Ended != 1 {
		t.Errorf("late event: delivered %d, ended %d; want 0 and 1", rep.Delivered, rep.Ended)
	}
	desc, err := e.Client.DescribeWorkflow(ctx, workflows.WorkflowID(f, trader), "")
	must(t, err)
	if st := desc.Status; st != enums.WORKFLOW_EXECUTION_STATUS_COMPLETED {
		t.Errorf("the ended relationship's workflow is %s, want it still completed", st)
	}
	if id := desc.WorkflowExecution.RunID; id != res.RelationshipID {
		t.Errorf("latest run %s, want the original %s: a new run was started", id, res.RelationshipID)
	}
	// A retried publish is harmless too.
	rep, err = e.Publisher.Publish(ctx, openEv(e, trader, "late", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "5", "1000", "60000", "8.33"))
	must(t, err)
	if !rep.Duplicate || rep.Delivered != 0 {
		t.Errorf("retried publish: %+v", rep)
	}
}
