package store_test

import (
	"errors"
	"sync"
	"testing"

	"smartcopy/copytrade"
	"smartcopy/store"
)

func openEvent(id, inst string, side copytrade.Side, mode copytrade.MarginMode, size, price, margin, leverage, equity string) copytrade.TraderEvent {
	return copytrade.TraderEvent{
		EventID: id, TraderID: "t1", Kind: copytrade.EventOpen, InstID: inst, Side: side, MarginMode: mode,
		Size: d(size), Price: d(price), Margin: d(margin), Leverage: d(leverage), Equity: d(equity),
	}
}

func closeEvent(id, inst string, side copytrade.Side, size, price string) copytrade.TraderEvent {
	return copytrade.TraderEvent{
		EventID: id, TraderID: "t1", Kind: copytrade.EventClose, InstID: inst, Side: side, Size: d(size), Price: d(price),
	}
}

func (f *fixture) record(ev copytrade.TraderEvent) copytrade.TraderEvent {
	f.t.Helper()
	got, fresh, err := f.st.RecordTraderEvent(f.ctx, ev)
	if err != nil {
		f.t.Fatalf("record %s: %v", ev.EventID, err)
	}
	if !fresh {
		f.t.Fatalf("record %s: not fresh", ev.EventID)
	}
	return got
}

func (f *fixture) book(traderID string) store.TraderBook {
	f.t.Helper()
	b, err := f.st.TraderBook(f.ctx, traderID)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func bookPos(t *testing.T, b store.TraderBook, inst string, side copytrade.Side) copytrade.Position {
	t.Helper()
	p, ok := b.Position(copytrade.PositionKey{InstID: inst, Side: side})
	if !ok {
		t.Fatalf("book of %s holds nothing on %s %s: %+v", b.TraderID, inst, side, b.Positions)
	}
	return p
}

func TestRegisterTrader(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	if _, err := f.st.TraderBook(f.ctx, "t1"); !errors.Is(err, store.ErrUnknownTrader) {
		t.Fatalf("book of unknown trader: %v, want ErrUnknownTrader", err)
	}
	wantField(t, f.st.RegisterTrader(f.ctx, "t1", d("-1")), "equity")
	wantField(t, f.st.RegisterTrader(f.ctx, "t/1", d("1")), "trader_id")
	f.trader("t1", "10000")
	f.trader("t1", "12000")
	b := f.book("t1")
	eq(t, "equity", b.Equity, d("12000"))
	if b.LastSeq != 0 || len(b.Positions) != 0 {
		t.Errorf("new trader's book = %+v", b)
	}
}

// The book follows the trader's events: opens merge with a size-weighted
// average price (R8), closes fill SizeBefore and keep the average price
// (R12), leverage changes recompute isolated margin (R15), margin changes
// fill MarginBefore (R16).
func TestRecordTraderEventBook_R8_R12_R15_R16(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	const btc, eth = "BTC-USDT-SWAP", "ETH-USDT-SWAP"

	ev := f.record(openEvent("e1", btc, copytrade.Long, copytrade.Cross, "10", "50000", "1000", "5", "10000"))
	if ev.Seq != 1 {
		t.Errorf("first event seq = %d, want 1", ev.Seq)
	}
	f.record(openEvent("e2", btc, copytrade.Long, copytrade.Cross, "10", "60000", "1200", "5", "11000"))
	b := f.book("t1")
	p := bookPos(t, b, btc, copytrade.Long)
	eq(t, "merged size", p.Size, d("20"))
	eq(t, "merged average price", p.AvgPrice, d("55000"))
	eq(t, "merged margin", p.Margin, d("2200"))
	eq(t, "equity from the last open", b.Equity, d("11000"))

	ev = f.record(closeEvent("e3", btc, copytrade.Long, "5", "61000"))
	eq(t, "size before the close", ev.SizeBefore, d("20"))
	if ev.Seq != 3 {
		t.Errorf("close seq = %d, want 3", ev.Seq)
	}
	p = bookPos(t, f.book("t1"), btc, copytrade.Long)
	eq(t, "size after partial close", p.Size, d("15"))
	eq(t, "average price after partial close", p.AvgPrice, d("55000"))
	eq(t, "margin after partial close", p.Margin, d("1650"))

	// A close of more than the trader holds is refused and changes nothing.
	_, _, err := f.st.RecordTraderEvent(f.ctx, closeEvent("e4", btc, copytrade.Long, "16", "61000"))
	fe := wantField(t, err, "size")
	if fe.Reason != "closes 16 but the trader holds 15" {
		t.Errorf("reason = %q", fe.Reason)
	}
	if b := f.book("t1"); b.LastSeq != 3 || !bookPos(t, b, btc, copytrade.Long).Size.Equal(d("15")) {
		t.Errorf("refused close changed the book: %+v", b)
	}
	if n := f.count(`select count(*) from trader_events where event_id = 'e4'`); n != 0 {
		t.Errorf("refused close was recorded")
	}

	// Isolated: ETH ctVal 0.1, 100 contracts at 3000 = 30,000 notional.
	f.record(openEvent("e5", eth, copytrade.Short, copytrade.Isolated, "100", "3000", "3000", "10", "0"))
	f.record(copytrade.TraderEvent{EventID: "e6", TraderID: "t1", Kind: copytrade.EventLeverage, InstID: eth, Side: copytrade.Short, Leverage: d("5")})
	p = bookPos(t, f.book("t1"), eth, copytrade.Short)
	eq(t, "isolated leverage", p.Leverage, d("5"))
	eq(t, "isolated margin at 5x", p.Margin, d("6000"))

	ev = f.record(copytrade.TraderEvent{EventID: "e7", TraderID: "t1", Kind: copytrade.EventMargin, InstID: eth, Side: copytrade.Short, MarginDelta: d("500")})
	eq(t, "margin before", ev.MarginBefore, d("6000"))
	eq(t, "margin after adding", bookPos(t, f.book("t1"), eth, copytrade.Short).Margin, d("6500"))
	_, _, err = f.st.RecordTraderEvent(f.ctx, copytrade.TraderEvent{EventID: "e8", TraderID: "t1", Kind: copytrade.EventMargin,
		InstID: eth, Side: copytrade.Short, MarginDelta: d("-7000")})
	wantField(t, err, "margin_delta")

	// Cross: a leverage change keeps the margin.
	f.record(copytrade.TraderEvent{EventID: "e9", TraderID: "t1", Kind: copytrade.EventLeverage, InstID: btc, Side: copytrade.Long, Leverage: d("10")})
	p = bookPos(t, f.book("t1"), btc, copytrade.Long)
	eq(t, "cross leverage", p.Leverage, d("10"))
	eq(t, "cross margin unchanged", p.Margin, d("1650"))

	ev = f.record(closeEvent("e10", btc, copytrade.Long, "15", "62000"))
	eq(t, "size before full close", ev.SizeBefore, d("15"))
	if _, held := f.book("t1").Position(copytrade.PositionKey{InstID: btc, Side: copytrade.Long}); held {
		t.Errorf("fully closed position still on the book")
	}

	// Nothing on the book: a full close unless upstream says otherwise.
	ev = f.record(closeEvent("e11", eth, copytrade.Long, "3", "3000"))
	eq(t, "size before, no book", ev.SizeBefore, d("3"))
	withBefore := closeEvent("e12", eth, copytrade.Long, "3", "3000")
	withBefore.SizeBefore = d("12")
	ev = f.record(withBefore)
	eq(t, "size before from upstream, no book", ev.SizeBefore, d("12"))

	// An instrument the venue does not list is recorded (each follower
	// fails its copy with unknown_instrument, R11) but not booked.
	ev = f.record(openEvent("e13", "DOGE-USDT-SWAP", copytrade.Long, copytrade.Cross, "1", "0.1", "10", "5", "0"))
	b = f.book("t1")
	if ev.Seq != b.LastSeq || b.LastSeq != 11 {
		t.Errorf("unknown instrument event seq %d, book last seq %d, want 11", ev.Seq, b.LastSeq)
	}
	if len(b.Positions) != 1 {
		t.Errorf("book = %+v, want only the ETH short", b.Positions)
	}
	eq(t, "equity unchanged by events without equity", b.Equity, d("11000"))
}

// The same event id delivered twice is recorded once; the second delivery
// gets the first event back, even racing the first (R24).
func TestRecordTraderEventDedup_R24(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	first := f.record(openEvent("e1", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "10", "50000", "1000", "5", "10000"))

	again := openEvent("e1", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "99", "1", "1", "1", "1")
	got, fresh, err := f.st.RecordTraderEvent(f.ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if fresh {
		t.Fatal("second delivery reported fresh")
	}
	if got.Seq != first.Seq || !got.Size.Equal(d("10")) || !got.Price.Equal(d("50000")) || got.Kind != copytrade.EventOpen {
		t.Errorf("second delivery returned %+v, want the first %+v", got, first)
	}
	b := f.book("t1")
	if b.LastSeq != 1 || !bookPos(t, b, "BTC-USDT-SWAP", copytrade.Long).Size.Equal(d("10")) || !b.Equity.Equal(d("10000")) {
		t.Errorf("second delivery changed the book: %+v", b)
	}

	const racers = 8
	var wg sync.WaitGroup
	results := make([]copytrade.TraderEvent, racers)
	freshes := make([]bool, racers)
	errs := make([]error, racers)
	for i := range racers {
		wg.Go(func() {
			results[i], freshes[i], errs[i] = f.st.RecordTraderEvent(f.ctx, closeEvent("e2", "BTC-USDT-SWAP", copytrade.Long, "4", "51000"))
		})
	}
	wg.Wait()
	nFresh := 0
	for i := range racers {
		if errs[i] != nil {
			t.Fatalf("racer %d: %v", i, errs[i])
		}
		if freshes[i] {
			nFresh++
		}
		if results[i].Seq != 2 || !results[i].SizeBefore.Equal(d("10")) {
			t.Errorf("racer %d got %+v", i, results[i])
		}
	}
	if nFresh != 1 {
		t.Errorf("%d racers recorded the event, want 1", nFresh)
	}
	eq(t, "size after one close of 4", bookPos(t, f.book("t1"), "BTC-USDT-SWAP", copytrade.Long).Size, d("6"))
}

// A malformed event names its field and records nothing, not even the
// trader (R25).
func TestRecordTraderEventRefusals_R25(t *testing.T) {
	t.Parallel()
	f := newFixture(t, copytrade.DefaultRules())
	good := openEvent("e1", "BTC-USDT-SWAP", copytrade.Long, copytrade.Cross, "1", "50000", "100", "5", "1000")
	for _, tc := range []struct {
		name  string
		edit  func(*copytrade.TraderEvent)
		field string
	}{
		{"no event id", func(e *copytrade.TraderEvent) { e.EventID = "" }, "event_id"},
		{"no trader", func(e *copytrade.TraderEvent) { e.TraderID = "" }, "trader_id"},
		{"no instrument", func(e *copytrade.TraderEvent) { e.InstID = "" }, "inst_id"},
		{"bad side", func(e *copytrade.TraderEvent) { e.Side = "up" }, "side"},
		{"bad kind", func(e *copytrade.TraderEvent) { e.Kind = "liquidate" }, "kind"},
		{"bad margin mode", func(e *copytrade.TraderEvent) { e.MarginMode = "" }, "margin_mode"},
		{"zero size", func(e *copytrade.TraderEvent) { e.Size = d("0") }, "size"},
		{"close without price", func(e *copytrade.TraderEvent) { e.Kind = copytrade.EventClose; e.Price = d("0") }, "price"},
		{"zero leverage", func(e *copytrade.TraderEvent) { e.Kind = copytrade.EventLeverage; e.Leverage = d("0") }, "leverage"},
		{"zero margin delta", func(e *copytrade.TraderEvent) { e.Kind = copytrade.EventMargin }, "margin_delta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := good
			tc.edit(&ev)
			_, _, err := f.st.RecordTraderEvent(f.ctx, ev)
			wantField(t, err, tc.field)
		})
	}
	if n := f.count(`select count(*) from traders`) + f.count(`select count(*) from trader_events`); n != 0 {
		t.Errorf("refused events left %d rows", n)
	}
}
