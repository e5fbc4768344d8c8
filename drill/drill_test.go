package drill

import (
	"fmt"
	"testing"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/uamirror/uamirror/mapping"
)

func TestPlanTargets(t *testing.T) {
	cfg := &mapping.Config{Servers: []mapping.Server{{Name: "plc"}, {Name: "scada"}, {Name: "hmi"}}}
	off := false
	for i := range 10 {
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "plc", Node: fmt.Sprintf("ns=1;s=%d", i)},
			Target: mapping.NodeRef{Server: "scada", Node: fmt.Sprintf("ns=1;s=%d", i)}}
		switch i {
		case 3:
			m.Enabled = &off
		case 4:
			m.Direction = mapping.Write
		case 5:
			m.Target.Server = "hmi"
		}
		cfg.Mappings = append(cfg.Mappings, m)
	}
	for _, tc := range []struct {
		share float64
		want  string
	}{
		{1, "[{scada [ns=1;s=0 ns=1;s=1 ns=1;s=2 ns=1;s=6 ns=1;s=7 ns=1;s=8 ns=1;s=9]} {hmi [ns=1;s=5]}]"},
		{0.5, "[{scada [ns=1;s=0 ns=1;s=1 ns=1;s=6 ns=1;s=8]} {hmi [ns=1;s=5]}]"},
		{0.01, "[{scada [ns=1;s=0]} {hmi [ns=1;s=5]}]"},
	} {
		var got []struct {
			s string
			n []string
		}
		for _, p := range planTargets(cfg, tc.share) {
			got = append(got, struct {
				s string
				n []string
			}{p.srv.Name, p.nodes})
		}
		if s := fmt.Sprint(got); s != tc.want {
			t.Errorf("share %v: %s, want %s", tc.share, s, tc.want)
		}
	}
}

func TestJudge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	good := func(v float64, ts int) *ua.DataValue {
		return &ua.DataValue{Value: ua.MustVariant(v), SourceTimestamp: at(ts)}
	}
	start, sw, switched, end := at(0), at(1000), at(1010), at(4000)
	cases := []struct {
		name    string
		samples []sample
		want    string // gap usual longest nochange bad default older dup pass
	}{
		{"cadence 50ms, handover 120ms", []sample{
			{0, at(-500), good(1, -500)}, // the current value on subscribing
			{0, at(900), good(2, 900)}, {0, at(950), good(3, 950)}, {0, at(1000), good(4, 1000)},
			{0, at(1120), good(5, 1120)}, {0, at(1170), good(6, 1170)}, {0, at(1400), good(7, 1400)},
			{0, at(3990), good(8, 3990)},
		}, "120ms 50ms 2.59s false 0 0 0 0 true"},
		{"anomalies", []sample{
			{0, at(900), good(2, 900)}, {0, at(1005), &ua.DataValue{Value: ua.MustVariant(2.0), Status: ua.StatusBadNoCommunication, SourceTimestamp: at(1005)}},
			{1, at(1005), good(0, 1005)}, {0, at(1030), good(1, 800)}, {0, at(1040), good(2, 900)},
		}, "25ms 0s 2.96s false 1 1 1 1 false"},
		{"an ordinary interval across the request is not the gap", []sample{
			{0, at(920), good(1, 920)}, {0, at(1003), good(2, 1003)}, {0, at(1058), good(3, 1058)},
			{0, at(1100), good(4, 1100)}, {0, at(3950), good(5, 3950)},
		}, "55ms 0s 2.85s false 0 0 0 0 true"},
		{"static sources", []sample{{0, at(-10), good(1, -10)}}, "0s 0s 0s true 0 0 0 0 true"},
		{"nothing after the switchover", []sample{{0, at(900), good(1, 900)}, {0, at(950), good(2, 950)}},
			"3.05s 50ms 3.05s false 0 0 0 0 false"},
	}
	for _, tc := range cases {
		s := &sampler{plan: targetPlan{srv: &mapping.Server{Name: "scada"}, nodes: []string{"a", "b"}}, samples: tc.samples}
		tg := s.judge(start, sw, switched, end, 2*time.Second)
		got := fmt.Sprint(tg.Gap, tg.Usual, tg.Longest, tg.NoChange, tg.Bad, tg.Defaults, tg.Older, tg.Duplicates, tg.Pass)
		if got != tc.want {
			t.Errorf("%s: %s, want %s (%v)", tc.name, got, tc.want, tg.Examples)
		}
	}
}
