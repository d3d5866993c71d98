package store_test

import (
	"errors"
	"sync"
	"testing"

	"smartcopy/copytrade"
	"smartcopy/store"
)

// A notification is written once per key and its email marked sent once,
// however often the activity that writes or sends it is retried (R23).
func TestNotifyOnce_R23(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	if err := f.st.SetFollowerEmail(f.ctx, "alice", "alice@example.com"); err != nil {
		t.Fatal(err)
	}
	wantField(t, f.st.SetFollowerEmail(f.ctx, "alice", "not an address"), "email")

	n := store.Notification{Key: "copy_failed/r1/e7", FollowerID: "alice", RelationshipID: "r1", Kind: store.NotifyCopyFailed,
		Subject: "Copy order failed", Body: "insufficient_funds: needs 20.05 USDT"}
	var wg sync.WaitGroup
	ids := make([]int64, 4)
	created := make([]bool, 4)
	errs := make([]error, 4)
	for i := range ids {
		wg.Go(func() { ids[i], created[i], errs[i] = f.st.Notify(f.ctx, n) })
	}
	wg.Wait()
	writers := 0
	for i := range ids {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("retries got ids %v, want one id", ids)
		}
		if created[i] {
			writers++
		}
	}
	if writers != 1 {
		t.Errorf("%d of 4 concurrent calls say they wrote the notification, want 1", writers)
	}
	if c := f.count(`select count(*) from notifications`); c != 1 {
		t.Errorf("notifications = %d, want 1", c)
	}
	second, _, err := f.st.Notify(f.ctx, store.Notification{Key: "released/r1", FollowerID: "alice", RelationshipID: "r1",
		Kind: store.NotifyReleased, Subject: "Funds released", Body: "1028.985 USDT"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*store.Notification)
		field string
	}{
		{"no key", func(n *store.Notification) { n.Key = "" }, "key"},
		{"no follower", func(n *store.Notification) { n.FollowerID = "" }, "follower_id"},
		{"unknown kind", func(n *store.Notification) { n.Kind = "promo" }, "kind"},
		{"no subject", func(n *store.Notification) { n.Subject = "" }, "subject"},
	} {
		bad := n
		bad.Key = "other"
		tc.edit(&bad)
		_, _, err := f.st.Notify(f.ctx, bad)
		wantField(t, err, tc.field)
	}

	inbox, err := f.st.Inbox(f.ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(inbox) != 2 || inbox[0].ID != second || inbox[1].ID != ids[0] || inbox[1].Email != "alice@example.com" ||
		inbox[1].Kind != store.NotifyCopyFailed || inbox[1].Body != n.Body || inbox[1].EmailSentAt != nil {
		t.Errorf("inbox = %+v", inbox)
	}
	unsent, err := f.st.UnsentEmails(f.ctx, 10)
	if err != nil || len(unsent) != 2 || unsent[0].ID != ids[0] {
		t.Errorf("unsent = %+v, %v", unsent, err)
	}

	if err := f.st.MarkEmailFailed(f.ctx, ids[0], "smtp down"); err != nil {
		t.Fatal(err)
	}
	sent, err := f.st.MarkEmailSent(f.ctx, ids[0])
	if err != nil || !sent {
		t.Fatalf("first mark sent = %v, %v", sent, err)
	}
	sent, err = f.st.MarkEmailSent(f.ctx, ids[0])
	if err != nil || sent {
		t.Fatalf("second mark sent = %v, %v; want false", sent, err)
	}
	got, err := f.st.Notification(f.ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if got.EmailSentAt == nil || got.Email != "alice@example.com" {
		t.Errorf("notification after sending = %+v", got)
	}
	if c := f.count(`select email_attempts from notifications where id = $1`, ids[0]); c != 2 {
		t.Errorf("email attempts = %d, want 2", c)
	}
	if err := f.st.MarkRead(f.ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Notification(f.ctx, 999); !errors.Is(err, store.ErrUnknownNotification) {
		t.Errorf("unknown notification: %v", err)
	}
	unsent, err = f.st.UnsentEmails(f.ctx, 10)
	if err != nil || len(unsent) != 1 || unsent[0].ID != second {
		t.Errorf("unsent after sending one = %+v, %v", unsent, err)
	}
}
