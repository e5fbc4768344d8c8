package bridge

import "testing"

func TestSelectMember(t *testing.T) {
	up := func(l int) memberView { return memberView{usable: true, level: l} }
	down := memberView{}
	tests := []struct {
		name    string
		members []memberView
		cur     int
		margin  int
		want    int
		why     string
	}{
		{"first choice: highest Healthy", []memberView{up(200), up(255)}, -1, 10, 1, whyFirst},
		{"tie goes to the first listed", []memberView{up(255), up(255)}, -1, 10, 0, whyFirst},
		{"tie, first listed down", []memberView{down, up(255), up(255)}, -1, 10, 1, whyFirst},
		{"kept: other better by less than the margin", []memberView{up(240), up(249)}, 0, 10, 0, whyKept},
		{"switch: other better by the margin", []memberView{up(240), up(250)}, 0, 10, 1, whyBetter},
		{"margin 0: any strictly better", []memberView{up(240), up(241)}, 0, 0, 1, whyBetter},
		{"margin 0: equal is kept", []memberView{up(240), up(240)}, 1, 0, 1, whyKept},
		{"kept at equal level (no failback flapping)", []memberView{up(255), up(255)}, 1, 10, 1, whyKept},
		{"level drop below Healthy: switch", []memberView{up(199), up(200)}, 0, 10, 1, whyLeft},
		{"level drop to 0: switch", []memberView{up(0), up(255)}, 0, 10, 1, whyLeft},
		{"session lost: switch", []memberView{down, up(255)}, 0, 10, 1, whyLost},
		{"failback: first back Healthy and better", []memberView{up(255), up(200)}, 1, 10, 0, whyBetter},
		{"failback: first back but not better by margin", []memberView{up(205), up(200)}, 1, 10, 1, whyKept},
		{"all down: none", []memberView{down, down}, 0, 10, -1, whyLost},
		{"all down from the start", []memberView{down, down}, -1, 10, -1, whyNone},
		{"all at 0 or 1: none", []memberView{up(0), up(1)}, 0, 10, -1, whyUnusable},
		{"no Healthy: best Degraded", []memberView{up(100), up(150)}, -1, 10, 1, whyDegraded},
		{"Degraded in use kept within margin", []memberView{up(105), up(100)}, 1, 10, 1, whyKept},
		{"Degraded in use, Healthy appears", []memberView{up(100), up(200)}, 0, 10, 1, whyLeft},
		{"Healthy in use kept over Degraded", []memberView{up(200), up(199)}, 0, 0, 0, whyKept},
		{"in use drops to Degraded, other Degraded lower: kept", []memberView{up(150), up(100)}, 0, 10, 0, whyKept},
		{"single member Healthy", []memberView{up(255)}, -1, 10, 0, whyFirst},
		{"single member to 0", []memberView{up(0)}, 0, 10, -1, whyUnusable},
		{"cur out of range", []memberView{up(255)}, 3, 10, 0, whyLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := selectMember(tt.members, tt.cur, tt.margin)
			if got != tt.want || why != tt.why {
				t.Fatalf("selectMember(%v, %d, %d) = %d, %q; want %d, %q", tt.members, tt.cur, tt.margin, got, why, tt.want, tt.why)
			}
		})
	}
}
