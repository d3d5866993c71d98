package activities_test

import (
	"context"
	"errors"
	"testing"

	"github.com/shopspring/decimal"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"smartcopy/activities"
	"smartcopy/copytrade"
	"smartcopy/internal/pgtest"
	"smartcopy/store"
)

// A business refusal is a non-retryable application error of type Refused
// carrying its field (workflows/options.go): retrying cannot fix it, and a
// retry policy without limit would otherwise retry it for ever.
func TestRefusalsAreNotRetried(t *testing.T) {
	ctx := context.Background()
	_, pool := pgtest.NewDatabase(t)
	st := store.New(pool, copytrade.DefaultRules())
	d := decimal.RequireFromString
	if err := st.RegisterTrader(ctx, "t1", d("10000")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Deposit(ctx, "alice", d("500"), "deposit/alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Follow(ctx, store.FollowParams{RelationshipID: "r1", WorkflowID: "copy/alice/t1",
		Request: copytrade.FollowRequest{FollowerID: "alice", TraderID: "t1", Investment: d("100")}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Release(ctx, "r1"); err != nil {
		t.Fatal(err)
	}

	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	acts := &activities.Activities{Store: st, Rules: copytrade.DefaultRules()}
	env.RegisterActivity(acts)
	for name, call := range map[string]func() error{
		"SetStatus on an ended relationship": func() error {
			_, err := env.ExecuteActivity(acts.SetStatus, activities.StatusInput{RelationshipID: "r1", Status: store.StatusActive})
			return err
		},
		"ChangeInvestment beyond the balance": func() error {
			_, err := env.ExecuteActivity(acts.ChangeInvestment, activities.InvestmentInput{
				Rel: activities.RelRef{RelationshipID: "r1"}, Key: "k1", Delta: d("1000")})
			return err
		},
		"Follow of an unknown trader": func() error {
			_, err := env.ExecuteActivity(acts.Follow, activities.FollowInput{RelationshipID: "r2", WorkflowID: "copy/alice/nobody",
				Request: copytrade.FollowRequest{FollowerID: "alice", TraderID: "nobody", Investment: d("100")}})
			return err
		},
	} {
		err := call()
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) || appErr.Type() != activities.ErrTypeRefused || !appErr.NonRetryable() {
			t.Errorf("%s: want a non-retryable %s error, got %v", name, activities.ErrTypeRefused, err)
			continue
		}
		if fe, ok := activities.AsFieldError(err); !ok || fe.Field == "" {
			t.Errorf("%s: the refusal carries no field: %v", name, err)
		}
	}
}
