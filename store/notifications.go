package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"smartcopy/copytrade"
)

// Notification kinds (R23), as notifications.kind allows them.
const (
	NotifyCopyFailed = "copy_failed"
	NotifySyncFailed = "sync_failed"
	NotifyStopLoss   = "stop_loss"
	NotifyReleased   = "released"
)

// Notification is one in-app message, and the email sent for it. Key is
// the idempotency key the notifying activity derives from what happened,
// so a retried activity writes one row and sends one email.
type Notification struct {
	ID                                                   int64
	Key, FollowerID, RelationshipID, Kind, Subject, Body string
	CreatedAt                                            time.Time
	ReadAt, EmailSentAt                                  *time.Time
	// Email is the follower's address at read time, for the sender.
	Email string
}

// Notify writes a notification once per key and returns its id, whether
// this call wrote it or an earlier one did; created says this call wrote
// it, so a retried caller can count the notification once.
func (s *Store) Notify(ctx context.Context, n Notification) (id int64, created bool, err error) {
	if n.Key == "" {
		return 0, false, fieldErr("key", "is required: a notification without an idempotency key could be sent twice")
	}
	if fe := copytrade.ValidateID("follower_id", n.FollowerID); fe != nil {
		return 0, false, fe
	}
	switch n.Kind {
	case NotifyCopyFailed, NotifySyncFailed, NotifyStopLoss, NotifyReleased:
	default:
		return 0, false, fieldErr("kind", "must be copy_failed, sync_failed, stop_loss or released, got %q", n.Kind)
	}
	if n.Subject == "" {
		return 0, false, fieldErr("subject", "is required")
	}
	err = s.pool.QueryRow(ctx, `insert into notifications (idempotency_key, follower_id, relationship_id, kind, subject, body)
		values ($1, $2, $3, $4, $5, $6)
		on conflict (idempotency_key) do nothing returning id`,
		n.Key, n.FollowerID, n.RelationshipID, n.Kind, n.Subject, n.Body).Scan(&id)
	created = err == nil
	if noRows(err) {
		// Written before, by an earlier attempt of the same activity.
		err = s.pool.QueryRow(ctx, `select id from notifications where idempotency_key = $1`, n.Key).Scan(&id)
	}
	return id, created, fail(err, "notify %s", n.Key)
}

const notificationColumns = `n.id, n.idempotency_key, n.follower_id, n.relationship_id, n.kind, n.subject, n.body,
	n.created_at, n.read_at, n.email_sent_at, coalesce(f.email, '')`

func scanNotification(row pgx.CollectableRow) (Notification, error) {
	var n Notification
	err := row.Scan(&n.ID, &n.Key, &n.FollowerID, &n.RelationshipID, &n.Kind, &n.Subject, &n.Body,
		&n.CreatedAt, &n.ReadAt, &n.EmailSentAt, &n.Email)
	return n, err
}

// Inbox lists a follower's notifications, newest first.
func (s *Store) Inbox(ctx context.Context, followerID string) ([]Notification, error) {
	rows, err := s.pool.Query(ctx, `select `+notificationColumns+`
		from notifications n left join followers f on f.id = n.follower_id
		where n.follower_id = $1 order by n.id desc`, followerID)
	if err != nil {
		return nil, fail(err, "inbox of %s", followerID)
	}
	out, err := pgx.CollectRows(rows, scanNotification)
	return out, fail(err, "inbox of %s", followerID)
}

// Notification reads one notification; ErrUnknownNotification if none.
func (s *Store) Notification(ctx context.Context, id int64) (Notification, error) {
	rows, err := s.pool.Query(ctx, `select `+notificationColumns+`
		from notifications n left join followers f on f.id = n.follower_id where n.id = $1`, id)
	if err != nil {
		return Notification{}, fail(err, "notification %d", id)
	}
	n, err := pgx.CollectExactlyOneRow(rows, scanNotification)
	if noRows(err) {
		err = ErrUnknownNotification
	}
	return n, fail(err, "notification %d", id)
}

// UnsentEmails lists up to limit notifications whose email is not sent
// yet, oldest first, for a sender that catches up after a crash.
func (s *Store) UnsentEmails(ctx context.Context, limit int) ([]Notification, error) {
	rows, err := s.pool.Query(ctx, `select `+notificationColumns+`
		from notifications n left join followers f on f.id = n.follower_id
		where n.email_sent_at is null order by n.id limit $1`, limit)
	if err != nil {
		return nil, fail(err, "unsent emails")
	}
	out, err := pgx.CollectRows(rows, scanNotification)
	return out, fail(err, "unsent emails")
}

// MarkEmailSent records that a notification's email went out and reports
// whether this call recorded it: of two senders racing, only one sees
// true.
func (s *Store) MarkEmailSent(ctx context.Context, id int64) (bool, error) {
	tag, err := s.pool.Exec(ctx, `update notifications set email_sent_at = now(), email_attempts = email_attempts + 1, email_error = ''
		where id = $1 and email_sent_at is null`, id)
	if err != nil {
		return false, fail(err, "mark email of notification %d sent", id)
	}
	return tag.RowsAffected() == 1, nil
}

// MarkEmailFailed records a failed attempt to email a notification.
func (s *Store) MarkEmailFailed(ctx context.Context, id int64, reason string) error {
	_, err := s.pool.Exec(ctx, `update notifications set email_attempts = email_attempts + 1, email_error = $2
		where id = $1 and email_sent_at is null`, id, reason)
	return fail(err, "mark email of notification %d failed", id)
}

// MarkRead records that the follower read a notification in the app.
func (s *Store) MarkRead(ctx context.Context, id int64) error {
	tag, err := s.pool.Exec(ctx, `update notifications set read_at = coalesce(read_at, now()) where id = $1`, id)
	if err == nil && tag.RowsAffected() == 0 {
		err = ErrUnknownNotification
	}
	return fail(err, "mark notification %d read", id)
}
