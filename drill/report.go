package drill

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteTable prints the verdict table: one line per target server, then
// the anomalies' examples and the overall verdict.
func (r Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tSAMPLED\tVALUES\tGAP\tUSUAL\tLONGEST\tBAD/UNCERTAIN\tDEFAULT\tOLDER\tDUPLICATE\tVERDICT")
	for _, t := range r.Targets {
		gap, usual, longest := "n/a (no change)", "-", "-"
		switch {
		case t.Err != "":
			gap = "-"
		case !t.NoChange:
			gap = t.Gap.Round(time.Millisecond).String()
			usual, longest = t.Usual.Round(time.Millisecond).String(), t.Longest.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", t.Server, t.Sampled, t.Values, gap, usual, longest,
			t.Bad, t.Defaults, t.Older, t.Duplicates, verdict(t.Pass))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, t := range r.Targets {
		if t.Err != "" {
			fmt.Fprintf(w, "%s: not sampled: %s\n", t.Server, t.Err)
		}
		for _, e := range t.Examples {
			fmt.Fprintf(w, "%s: %s\n", t.Server, e)
		}
	}
	_, err := fmt.Fprintf(w, "drill %s: switchover answered in %s\n", verdict(r.Pass),
		r.Switched.Sub(r.Switch).Round(time.Millisecond))
	return err
}

func verdict(pass bool) string {
	if pass {
		return "PASS"
	}
	return "FAIL"
}
