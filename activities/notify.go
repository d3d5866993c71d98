package activities

import (
	"context"
	"fmt"

	"smartcopy/store"
)

// Notification kinds (R23).
const (
	NotifyCopyFailed = "copy_failed"
	NotifySyncFailed = "sync_failed"
	NotifyStopLoss   = "stop_loss"
	NotifyReleased   = "released"
)

// Mailer sends one email. The message id lets a receiving server drop a
// duplicate if a crash lands between sending and recording the send.
type Mailer interface {
	Send(ctx context.Context, to, subject, body, messageID string) error
}

// NotifyInput is one notification: in-app (the outbox row) and by email.
type NotifyInput struct {
	// Key makes the notification once-only: it is derived from what it is
	// about (the order, the sync, the stop), never from the attempt.
	Key            string `json:"key"`
	FollowerID     string `json:"follower_id"`
	RelationshipID string `json:"relationship_id"`
	Kind           string `json:"kind"`
	Subject        string `json:"subject"`
	Body           string `json:"body"`
}

// Notify writes the notification to the outbox, which is the follower's
// in-app inbox, then emails it unless it was emailed before (R23). A retry
// finds the row by its key and the email marked sent.
//
// The stop-loss notification is also where a triggered stop loss is
// counted: the workflow decides the stop, but workflow code does no I/O,
// and this activity runs exactly when a relationship stops on its stop
// loss. Its key is once per relationship, so counting when the outbox row is
// first written counts each stop once, however often the activity is
// retried or the workflow replayed, with no new command in the workflow.
func (a *Activities) Notify(ctx context.Context, in NotifyInput) error {
	log := logger(ctx, logRelationship, in.RelationshipID, "notification_key", in.Key, "kind", in.Kind)
	id, created, err := a.Store.Notify(ctx, store.Notification{
		Key: in.Key, FollowerID: in.FollowerID, RelationshipID: in.RelationshipID,
		Kind: in.Kind, Subject: in.Subject, Body: in.Body,
	})
	if err != nil {
		return fmt.Errorf("notify %s: %w", in.Key, err)
	}
	if created {
		log.Info("notification recorded", "notification_id", id, "subject", in.Subject)
		if in.Kind == NotifyStopLoss && a.Metrics != nil {
			a.Metrics.StopLossTriggered()
		}
	}
	if a.Mailer == nil {
		return nil
	}
	n, err := a.Store.Notification(ctx, id)
	if err != nil {
		return err
	}
	if n.EmailSentAt != nil || n.Email == "" {
		return nil
	}
	if err := a.Mailer.Send(ctx, n.Email, n.Subject, n.Body, fmt.Sprintf("<notification-%d@smartcopy>", n.ID)); err != nil {
		log.Warn("notification email failed", "notification_id", n.ID, "error", err)
		return fmt.Errorf("email notification %d: %w", n.ID, err)
	}
	if _, err = a.Store.MarkEmailSent(ctx, n.ID); err != nil {
		return err
	}
	log.Info("notification emailed", "notification_id", n.ID)
	return nil
}
