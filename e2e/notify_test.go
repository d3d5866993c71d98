package e2e

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"smartcopy/activities"
	"smartcopy/copytrade"
	"smartcopy/internal/testenv"
	"smartcopy/store"
	"smartcopy/system"
	"smartcopy/workflows"
)

// R23 over real SMTP: a failed copy, a failed sync, a stop loss and a
// release each give the follower exactly one in-app notification and
// exactly one email, sent by the worker's mailer to a local SMTP server
// (a listener in this test speaking the protocol, not a mock of the
// mailer). Notifying again under the same key, as a retried activity
// does, writes no second row and sends no second email.
func TestNotificationsOverSMTP_R23(t *testing.T) {
	ctx := context.Background()
	smtpd := startSMTP(t)
	e := testenv.New(t, server, testenv.Options{Configure: func(c *system.Config) {
		c.SMTPAddr = smtpd.addr
		c.SMTPFrom = "smartcopy@test.local"
	}})
	trader, dana := e.ID("lead"), e.ID("dana")
	must(t, e.Store.RegisterTrader(ctx, trader, d("10000")))
	must(t, e.Store.SetMarkPrice(ctx, ethSwap, d("3000")))
	_, err := e.Store.Deposit(ctx, dana, d("1000"), "deposit/"+dana)
	must(t, err)
	must(t, e.Store.SetFollowerEmail(ctx, dana, "dana@example.com"))
	res, err := e.API.Follow(ctx, copytrade.FollowRequest{FollowerID: dana, TraderID: trader, Investment: d("200"), StopLoss: d("30")})
	must(t, err)
	pub := func(id string, ev copytrade.TraderEvent) {
		t.Helper()
		ev.EventID, ev.TraderID = e.ID(id), trader
		rep, err := e.Publisher.Publish(ctx, ev)
		must(t, err)
		e.WaitApplied(ctx, dana, trader, rep.Event.Seq)
	}

	// A failed copy: the trader's fill at 2,900 is more than 0.5% better
	// than the 3,000 market (R10).
	pub("n1", evOpen(ethSwap, copytrade.Long, copytrade.Cross, "3", "100", "10000", "2900", "1"))
	// An isolated short on 80% of the equity: 160 USDT at 10x → 5.33
	// contracts, margin 159.9, fee 0.7995, leaving 39.3005 available.
	pub("n2", evOpen(ethSwap, copytrade.Short, copytrade.Isolated, "10", "8000", "10000", "3000", "26.66"))
	// A failed sync: 2x needs 799.5 margin, 639.6 more than available (R15).
	pub("n3", evLeverage(ethSwap, copytrade.Short, "2"))
	// A stop loss: at 3,060 net = -0.7995 - 60 x 5.33 x 0.1 = -32.7795,
	// past -30 (R20); market_close, then the release (R19).
	must(t, e.Store.SetMarkPrice(ctx, ethSwap, d("3060")))
	result := e.WaitClosed(ctx, dana, trader)
	if result.StopReason != workflows.StopLoss {
		t.Fatalf("dana: %+v, want stopped by stop_loss", result)
	}

	// The workflow waits for its notifications before it closes, so all
	// four are in: one row and one email each.
	inbox, err := e.Store.Inbox(ctx, dana)
	must(t, err)
	kinds := map[string]int{}
	for _, n := range inbox {
		kinds[n.Kind]++
		if n.EmailSentAt == nil {
			t.Errorf("notification %d (%s) not marked emailed", n.ID, n.Kind)
		}
	}
	want := map[string]int{store.NotifyCopyFailed: 1, store.NotifySyncFailed: 1, store.NotifyStopLoss: 1, store.NotifyReleased: 1}
	if len(inbox) != 4 || len(kinds) != 4 {
		t.Fatalf("inbox: %v, want one of each of %v", kinds, want)
	}
	msgs := smtpd.waitFor(t, 4)
	subjects := map[string]string{}
	ids := map[string]bool{}
	for _, m := range msgs {
		if m.from != "smartcopy@test.local" || len(m.to) != 1 || m.to[0] != "dana@example.com" {
			t.Errorf("envelope from %s to %v", m.from, m.to)
		}
		subjects[m.header("Subject")] = m.data
		ids[m.header("Message-ID")] = true
	}
	for _, n := range inbox {
		body, ok := subjects[n.Subject]
		if !ok {
			t.Errorf("no email with subject %q", n.Subject)
			continue
		}
		if !strings.Contains(body, strings.SplitN(n.Body, "\n", 2)[0]) {
			t.Errorf("email %q does not carry the notification's body %q", n.Subject, n.Body)
		}
	}
	if len(ids) != 4 {
		t.Errorf("message ids %v, want 4 distinct", ids)
	}
	for _, n := range inbox {
		if n.Kind == store.NotifyCopyFailed && !strings.Contains(n.Subject, copytrade.ReasonSpreadProtection) {
			t.Errorf("copy failure without its reason (R23): %q", n.Subject)
		}
		if n.Kind == store.NotifySyncFailed && !strings.Contains(n.Subject, copytrade.ReasonInsufficientFunds) {
			t.Errorf("sync failure without its reason (R23): %q", n.Subject)
		}
	}

	// A retried Notify activity: the same key twice, and again a key the
	// workflow used. One new row, one new email, nothing resent.
	acts := e.Activities()
	retry := activities.NotifyInput{Key: "notify/test-retry/" + res.RelationshipID, FollowerID: dana, RelationshipID: res.RelationshipID,
		Kind: activities.NotifyCopyFailed, Subject: "Copy failed: retried", Body: "sent once"}
	must(t, acts.Notify(ctx, retry))
	must(t, acts.Notify(ctx, retry))
	must(t, acts.Notify(ctx, activities.NotifyInput{Key: "notify/stop-loss/" + res.RelationshipID, FollowerID: dana,
		RelationshipID: res.RelationshipID, Kind: activities.NotifyStopLoss, Subject: "Stop loss again", Body: "must not be sent"}))
	smtpd.waitFor(t, 5)
	time.Sleep(200 * time.Millisecond) // room for a wrong extra email to arrive
	if n := len(smtpd.messages()); n != 5 {
		t.Errorf("emails after the retries: %d, want 5", n)
	}
	inbox, err = e.Store.Inbox(ctx, dana)
	must(t, err)
	if len(inbox) != 5 {
		t.Errorf("inbox after the retries: %d rows, want 5", len(inbox))
	}
}

// smtpServer is just enough of an SMTP server for the mailer: it greets,
// accepts any sender and recipient, and records each message's envelope
// and data.
type smtpServer struct {
	addr string
	mu   sync.Mutex
	msgs []smtpMessage
}

type smtpMessage struct {
	from string
	to   []string
	data string
}

// header returns a header's value from the message data.
func (m smtpMessage) header(name string) string {
	head, _, _ := strings.Cut(m.data, "\r\n\r\n")
	for _, line := range strings.Split(head, "\r\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

func startSMTP(t *testing.T) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s := &smtpServer{addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *smtpServer) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(conn)
	reply := func(line string) { conn.Write([]byte(line + "\r\n")) }
	reply("220 test.local ESMTP")
	var m smtpMessage
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO":
			reply("250 test.local")
		case "MAIL":
			_, addr, _ := strings.Cut(arg, ":") // FROM:<address>
			m = smtpMessage{from: strings.Trim(addr, "<> ")}
			reply("250 OK")
		case "RCPT":
			_, addr, _ := strings.Cut(arg, ":") // TO:<address>
			m.to = append(m.to, strings.Trim(addr, "<> "))
			reply("250 OK")
		case "DATA":
			reply("354 end with <CRLF>.<CRLF>")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			m.data = data.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			reply("250 OK queued")
		case "RSET", "NOOP":
			reply("250 OK")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

func (s *smtpServer) messages() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.msgs...)
}

// waitFor waits until n messages have arrived and returns them.
func (s *smtpServer) waitFor(t *testing.T, n int) []smtpMessage {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if msgs := s.messages(); len(msgs) >= n {
			return msgs
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("SMTP: %d messages, want %d", len(s.messages()), n)
	return nil
}
