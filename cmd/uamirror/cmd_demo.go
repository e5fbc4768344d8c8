package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/bridge"
	"github.com/uamirror/uamirror/mapping"
	"github.com/uamirror/uamirror/simserver"
)

func newDemoCmd(a *app) *cobra.Command {
	var (
		n         int
		rate      float64
		duration  time.Duration
		killAfter time.Duration
		single    bool
		keepLogs  bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a redundant pair between two simulation servers and kill its active node",
		Long: `demo starts, as child processes on 127.0.0.1, two simulation OPC UA servers —
a "plc" whose values change and a "scada" that receives them — an arbiter and
two bridge nodes mirroring plc.v_i → scada.v_i. Every second it shows each
member's role, the epoch, values written per second and bad writes (read from
the scada server's write journal). After --kill-after it kills the active
node with SIGKILL, shows the takeover and the measured gap, and restarts the
killed node, which rejoins as standby. Ctrl-C (or --duration) stops every
child process. The members' logs are in a temporary directory (printed at
the start), removed at the end unless --keep-logs is given or the demo
failed; the last line says which.

With --single it runs the engine alone in this process instead and prints
values/s, latency and mapping states.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pkiPath, secure := pkiDir(a, cmd, "")
			if single {
				return runDemo(cmd.Context(), cmd.OutOrStdout(), a.logger, n, rate, duration, pkiPath)
			}
			if !secure {
				pkiPath = ""
			}
			return runPairDemo(cmd.Context(), cmd.OutOrStdout(), n, rate, duration, killAfter, pkiPath, keepLogs)
		},
	}
	cmd.Flags().IntVar(&n, "mappings", 1000, "number of mapped items")
	cmd.Flags().Float64Var(&rate, "rate", 2000, "total source changes per second")
	cmd.Flags().DurationVar(&killAfter, "kill-after", 8*time.Second, "kill -9 the active node after this long (pair mode)")
	cmd.Flags().BoolVar(&single, "single", false, "run the engine alone in this process (no pair)")
	cmd.Flags().DurationVar(&duration, "duration", 0, "stop after this long (0: until Ctrl-C)")
	cmd.Flags().BoolVar(&keepLogs, "keep-logs", false, "keep the members' logs and data directories at the end (pair mode; they are kept anyway when the demo fails)")
	cmd.Flags().String("pki", "", "secure demo: the plc is reached over Basic256Sha256/SignAndEncrypt (its certificate pinned) with the certificate store in this folder (a node uses DIR/<id>; env UAMIRROR_PKI)")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, log *zap.Logger, n int, rate float64, duration time.Duration, pkiPath string) error {
	quiet := log.WithOptions(zap.IncreaseLevel(zap.WarnLevel))
	plcCfg := simserver.Config{Vars: n, Type: "Double", Rate: rate, Logger: quiet.Named("plc")}
	var sec bridge.Security
	if pkiPath != "" {
		st, err := openPKI(pkiPath, log)
		if err != nil {
			return err
		}
		sec = st
		plcCfg.Security = []simserver.SecurityPolicy{{Policy: "Basic256Sha256", Mode: ua.MessageSecurityModeSignAndEncrypt}}
	}
	plc, err := simserver.New(plcCfg)
	if err != nil {
		return err
	}
	scada, err := simserver.New(simserver.Config{Vars: n, Type: "Double", Logger: quiet.Named("scada")})
	if err != nil {
		return err
	}
	sctx, stopServers := context.WithCancel(context.Background())
	defer stopServers()
	if err := plc.Start(sctx); err != nil {
		return fmt.Errorf("start plc simserver: %w", err)
	}
	defer plc.Close()
	if err := scada.Start(sctx); err != nil {
		return fmt.Errorf("start scada simserver: %w", err)
	}
	defer scada.Close()

	cfg := &mapping.Config{
		Servers: []mapping.Server{
			{Name: "plc", Endpoints: []string{plc.Endpoint()}},
			{Name: "scada", Endpoints: []string{scada.Endpoint()}},
		},
	}
	if sec != nil {
		pin, err := demoPin(ctx, plc.Endpoint())
		if err != nil {
			return err
		}
		cfg.Servers[0].SecurityPolicy, cfg.Servers[0].SecurityMode = "Basic256Sha256", "SignAndEncrypt"
		cfg.Servers[0].TrustedCertificates = []string{pin}
	}
	for i := 0; i < n; i++ {
		nid := fmt.Sprintf("nsu=urn:uamirror:simserver;s=v%d", i)
		m := mapping.Mapping{Source: mapping.NodeRef{Server: "plc", Node: nid}, Target: mapping.NodeRef{Server: "scada", Node: nid}}
		m.ID = mapping.DeriveID(m.Source, m.Target)
		cfg.Mappings = append(cfg.Mappings, m)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	eng, err := bridge.New(bridge.Options{Config: cfg, Logger: quiet, Security: sec})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "uamirror demo: %d mappings plc %s → scada %s, %.0f changes/s (Ctrl-C to stop)\n",
		n, plc.Endpoint(), scada.Endpoint(), rate)
	if duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	done := make(chan error, 1)
	ectx, stopEngine := context.WithCancel(ctx)
	defer stopEngine()
	go func() { done <- eng.Run(ectx) }()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastWrites uint64
	var lastLat bridge.Histogram
	start := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			st := eng.Stats()
			var writes uint64
			conn := make([]string, 0, len(st.Servers))
			for _, s := range st.Servers {
				writes += s.Writes
				conn = append(conn, s.Name+":"+s.State.String())
			}
			lat := deltaHist(st.Latency, lastLat)
			lastLat = st.Latency
			fmt.Fprintf(out, "%5.0fs  %7d values/s  latency p50 %-6s p99 %-6s  %s  mappings %s\n",
				time.Since(start).Seconds(), writes-lastWrites, lat.Quantile(0.5).Round(time.Millisecond), lat.Quantile(0.99).Round(time.Millisecond),
				strings.Join(conn, " "), statesLine(st.States))
			lastWrites = writes
		}
	}
	stopEngine()
	<-done
	// Final check: after the engine drained, every target equals its source.
	same := 0
	for i := 0; i < n; i++ {
		if a, b := plc.Value(i), scada.Value(i); a != nil && b != nil && a.Value != nil && b.Value != nil && a.Value.Value() == b.Value.Value() {
			same++
		}
	}
	fmt.Fprintf(out, "stopped: %d of %d targets equal their source (sources keep changing, so the last in-flight values may differ)\n", same, n)
	return nil
}

func deltaHist(cur, prev bridge.Histogram) bridge.Histogram {
	d := bridge.Histogram{Counts: make([]uint64, len(cur.Counts)), Count: cur.Count - prev.Count, Sum: cur.Sum - prev.Sum}
	for i := range cur.Counts {
		d.Counts[i] = cur.Counts[i]
		if i < len(prev.Counts) {
			d.Counts[i] -= prev.Counts[i]
		}
	}
	return d
}

func statesLine(m map[bridge.State]int) string {
	keys := make([]bridge.State, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
