package copytrade_test

import (
	"strings"
	"testing"

	"smartcopy/copytrade"
)

func validOpen() copytrade.TraderEvent {
	return copytrade.TraderEvent{EventID: "e1", TraderID: "t1", Kind: copytrade.EventOpen, InstID: btc.ID,
		Side: copytrade.Long, MarginMode: copytrade.Cross, Leverage: d("5"), Margin: d("1000"),
		Equity: d("10000"), Price: d("60000"), Size: d("0.83")}
}

// TestTraderEventValidate_R25: a malformed event names the field that is
// wrong; a well-formed one of each kind passes.
func TestTraderEventValidate_R25(t *testing.T) {
	valid := map[string]copytrade.TraderEvent{
		"open": validOpen(),
		"close": {EventID: "e2", TraderID: "t1", Kind: copytrade.EventClose, InstID: btc.ID, Side: copytrade.Long,
			Size: d("0.5"), Price: d("61000")},
		"leverage": {EventID: "e3", TraderID: "t1", Kind: copytrade.EventLeverage, InstID: btc.ID, Side: copytrade.Short,
			Leverage: d("3")},
		"margin remove": {EventID: "e4", TraderID: "t1", Kind: copytrade.EventMargin, InstID: btc.ID, Side: copytrade.Long,
			MarginDelta: d("-20")},
		// R11 is the venue's and the sizing's business: an open with
		// leverage above the maximum is a well-formed event.
		"open above max leverage": func() copytrade.TraderEvent { e := validOpen(); e.Leverage = d("1000"); return e }(),
	}
	for name, e := range valid {
		if err := e.Validate(); err != nil {
			t.Errorf("%s: Validate = %v, want nil", name, err)
		}
	}

	tests := []struct {
		name   string
		change func(*copytrade.TraderEvent)
		field  string
	}{
		{"no event id", func(e *copytrade.TraderEvent) { e.EventID = "" }, "event_id"},
		{"event id with slash", func(e *copytrade.TraderEvent) { e.EventID = "a/b" }, "event_id"},
		{"event id with space", func(e *copytrade.TraderEvent) { e.EventID = "a b" }, "event_id"},
		{"event id too long", func(e *copytrade.TraderEvent) { e.EventID = strings.Repeat("x", 129) }, "event_id"},
		{"no trader id", func(e *copytrade.TraderEvent) { e.TraderID = "" }, "trader_id"},
		{"trader id with newline", func(e *copytrade.TraderEvent) { e.TraderID = "t\n1" }, "trader_id"},
		{"no instrument", func(e *copytrade.TraderEvent) { e.InstID = "" }, "inst_id"},
		{"no side", func(e *copytrade.TraderEvent) { e.Side = "" }, "side"},
		{"bad side", func(e *copytrade.TraderEvent) { e.Side = "buy" }, "side"},
		{"no kind", func(e *copytrade.TraderEvent) { e.Kind = "" }, "kind"},
		{"bad kind", func(e *copytrade.TraderEvent) { e.Kind = "liquidate" }, "kind"},
		{"open without margin mode", func(e *copytrade.TraderEvent) { e.MarginMode = "" }, "margin_mode"},
		{"open with bad margin mode", func(e *copytrade.TraderEvent) { e.MarginMode = "portfolio" }, "margin_mode"},
		{"open with zero size", func(e *copytrade.TraderEvent) { e.Size = d("0") }, "size"},
		{"open with negative size", func(e *copytrade.TraderEvent) { e.Size = d("-1") }, "size"},
		{"close with zero size", func(e *copytrade.TraderEvent) { e.Kind = copytrade.EventClose; e.Size = d("0") }, "size"},
		{"close with zero price", func(e *copytrade.TraderEvent) { e.Kind = copytrade.EventClose; e.Price = d("0") }, "price"},
		{"close with negative price", func(e *copytrade.TraderEvent) { e.Kind = copytrade.EventClose; e.Price = d("-1") }, "price"},
		{"leverage zero", func(e *copytrade.TraderEvent) { e.Kind = copytrade.EventLeverage; e.Leverage = d("0") }, "leverage"},
		{"leverage negative", func(e *copytrade.TraderEvent) { e.Kind = copytrade.EventLeverage; e.Leverage = d("-2") }, "leverage"},
		{"margin delta zero", func(e *copytrade.TraderEvent) { e.Kind = copytrade.EventMargin; e.MarginDelta = d("0") }, "margin_delta"},
		{"huge size", func(e *copytrade.TraderEvent) { e.Size = d("1e400") }, "size"},
		{"huge leverage", func(e *copytrade.TraderEvent) { e.Leverage = d("1e16") }, "leverage"},
		{"huge equity", func(e *copytrade.TraderEvent) { e.Equity = d("1e400") }, "equity"},
		{"huge price", func(e *copytrade.TraderEvent) { e.Price = d("1e20") }, "price"},
		{"huge margin removed", func(e *copytrade.TraderEvent) { e.Kind = copytrade.EventMargin; e.MarginDelta = d("-1e400") }, "margin_delta"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := validOpen()
			tc.change(&e)
			err := e.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %+v", e)
			}
			if err.Field != tc.field {
				t.Errorf("field = %q, want %q (%v)", err.Field, tc.field, err)
			}
			if err.Reason == "" {
				t.Error("no reason given")
			}
		})
	}
}

// TestFollowRequestValidate_R1_R3_R25: each refusal names its field.
func TestFollowRequestValidate_R1_R3_R25(t *testing.T) {
	rules := copytrade.DefaultRules()
	good := copytrade.FollowRequest{FollowerID: "f1", TraderID: "t1", Investment: d("1000")}
	if err := good.Validate(rules); err != nil {
		t.Fatalf("Validate(%+v) = %v", good, err)
	}
	if got := good.Normalize().StopMode; got != copytrade.MarketClose {
		t.Errorf("default stop mode = %q, want market_close", got)
	}
	withStop := good
	withStop.StopLoss, withStop.StopMode = d("50"), copytrade.ManualClose
	if err := withStop.Validate(rules); err != nil {
		t.Errorf("stop loss 50 manual_close refused: %v", err)
	}
	if got := withStop.Normalize().StopMode; got != copytrade.ManualClose {
		t.Errorf("Normalize overwrote stop mode: %q", got)
	}
	atMin := good
	atMin.Investment = d("100")
	if err := atMin.Validate(rules); err != nil {
		t.Errorf("investment of exactly the minimum refused: %v", err)
	}

	tests := []struct {
		name   string
		change func(*copytrade.FollowRequest)
		field  string
	}{
		{"no follower", func(r *copytrade.FollowRequest) { r.FollowerID = "" }, "follower_id"},
		{"follower id with slash", func(r *copytrade.FollowRequest) { r.FollowerID = "f/1" }, "follower_id"},
		{"no trader", func(r *copytrade.FollowRequest) { r.TraderID = "" }, "trader_id"},
		{"R3 following yourself", func(r *copytrade.FollowRequest) { r.TraderID = r.FollowerID }, "trader_id"},
		{"R3 zero investment", func(r *copytrade.FollowRequest) { r.Investment = d("0") }, "investment"},
		{"R3 negative investment", func(r *copytrade.FollowRequest) { r.Investment = d("-500") }, "investment"},
		{"R1 below the minimum", func(r *copytrade.FollowRequest) { r.Investment = d("99.99") }, "investment"},
		{"more than MoneyScale places", func(r *copytrade.FollowRequest) { r.Investment = d("100.000000001") }, "investment"},
		{"negative stop loss", func(r *copytrade.FollowRequest) { r.StopLoss = d("-1") }, "stop_loss"},
		{"unknown stop mode", func(r *copytrade.FollowRequest) { r.StopMode = "panic_sell" }, "stop_mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := good
			tc.change(&r)
			err := r.Validate(rules)
			if err == nil {
				t.Fatalf("Validate accepted %+v", r)
			}
			if err.Field != tc.field || err.Reason == "" {
				t.Errorf("got %q: %q, want field %q with a reason", err.Field, err.Reason, tc.field)
			}
		})
	}
}

// TestValidateAmount_R18: amounts moved by requests are positive and kept
// to MoneyScale places.
func TestValidateAmount_R18(t *testing.T) {
	for _, ok := range []string{"0.00000001", "1", "250.5"} {
		if err := copytrade.ValidateAmount("amount", d(ok)); err != nil {
			t.Errorf("ValidateAmount(%s) = %v", ok, err)
		}
	}
	for _, bad := range []string{"0", "-1", "0.000000001", "1e400", "1000000000000000.00000001"} {
		if err := copytrade.ValidateAmount("amount", d(bad)); err == nil || err.Field != "amount" {
			t.Errorf("ValidateAmount(%s) = %v, want an error on field amount", bad, err)
		}
	}
	if err := copytrade.ValidateStopLoss(d("0")); err != nil {
		t.Errorf("zero stop loss (none) refused: %v", err)
	}
	for _, bad := range []string{"-0.01", "1e400", "0.000000001"} {
		if err := copytrade.ValidateStopLoss(d(bad)); err == nil || err.Field != "stop_loss" {
			t.Errorf("ValidateStopLoss(%s) = %v, want an error on field stop_loss", bad, err)
		}
	}
	if err := copytrade.ValidateInvestment("investment", d("1e400"), copytrade.DefaultRules()); err == nil || err.Field != "investment" {
		t.Errorf("ValidateInvestment(1e400) = %v, want an error on field investment", err)
	}
}

// TestParseAmount_R25: text that is not a finite number is refused with
// the field named; numbers are read exactly.
func TestParseAmount_R25(t *testing.T) {
	good := map[string]string{
		"100":        "100",
		" 12.5 ":     "12.5",
		"0.00000001": "0.00000001",
		"-3":         "-3", // a number: the sign is the amount validators' business
		"1e3":        "1000",
		"1e15":       "1" + strings.Repeat("0", 15),
		"-1e15":      "-1" + strings.Repeat("0", 15),
	}
	for text, want := range good {
		got, err := copytrade.ParseAmount("investment", text)
		if err != nil {
			t.Errorf("ParseAmount(%q) = %v", text, err)
			continue
		}
		eq(t, "ParseAmount("+text+")", got, d(want))
	}
	// Finite but absurd figures are refused too: no balance check stands
	// behind a deposit, a stop loss, a price or an equity, and 1e400 USDT
	// is a typo, not an amount.
	for _, text := range []string{"", "   ", "abc", "NaN", "nan", "Inf", "+Inf", "-Infinity", "1,000", "0x10", "1e", "1e99999", "1..2", "--1",
		"1e400", "-1e400", "1000000000000000.01", strings.Repeat("9", 500)} {
		got, err := copytrade.ParseAmount("investment", text)
		if err == nil {
			t.Errorf("ParseAmount(%q) = %s, want an error", text, got)
			continue
		}
		if err.Field != "investment" || err.Reason == "" {
			t.Errorf("ParseAmount(%q) error %+v does not name the field and reason", text, err)
		}
		if !got.IsZero() {
			t.Errorf("ParseAmount(%q) returned %s with its error", text, got)
		}
	}
}
