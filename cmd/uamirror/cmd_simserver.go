package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/uamirror/uamirror/simserver"
)

func newSimserverCmd(a *app) *cobra.Command {
	var (
		cfg          = simserver.DefaultConfig()
		security     string
		serviceLevel int
		control      bool
		users        []string
	)
	cmd := &cobra.Command{
		Use:   "simserver",
		Short: "Run a simulation OPC UA server (for tests, benchmarks and the demo)",
		Long: `simserver serves N variables ns=<idx>;s=v0 … v<N-1> (namespace
urn:uamirror:simserver, under Objects/Sim) whose types cycle through Boolean,
SByte, Byte, Int16, UInt16, Int32, UInt32, Int64, UInt64, Float, Double,
String, DateTime, ByteString, Double[] and Int32[] (or are all --type), whose
values change deterministically at --rate changes/s in total over the first
--changing variables, and which accept type-checked writes (journaled with
--journal). ServiceLevel (ns=0;i=2267) is --service-level and writable.

Once listening it prints one line to stdout:

  simserver ready endpoint=opc.tcp://127.0.0.1:PORT vars=N

and runs until SIGINT/SIGTERM. With --control it reads commands from stdin,
one per line, and answers each with one line on stdout ("ok ..." or
"error ..."); end of input stops the server:

  servicelevel N       set ServiceLevel
  set I VALUE          set variable I (VALUE parsed for its type; arrays
                       comma-separated, ByteString base64, DateTime RFC 3339)
  bad I [STATUS]       give variable I a Bad status (default Bad_NoCommunication,
                       or a hex code such as 0x80000000); it sticks
  good I               clear it
  drop                 close every client connection (the server stays up)
  clock step D         step the server's clock by the Go duration D (-1h: back
                       an hour); every timestamp it stamps from then on moves`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.Security, err = simserver.ParseSecurity(security); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--security: %w", err)}
			}
			for _, u := range users {
				name, file, ok := strings.Cut(u, ":")
				if !ok || name == "" || file == "" {
					return &exitError{code: 2, err: fmt.Errorf("--user %q: want NAME:PASSWORD_FILE", u)}
				}
				b, err := os.ReadFile(file)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--user %s: password file: %w", name, err)}
				}
				if cfg.Users == nil {
					cfg.Users = map[string]string{}
				}
				cfg.Users[name] = strings.TrimRight(string(b), "\r\n")
			}
			if serviceLevel < 0 || serviceLevel > 255 {
				return &exitError{code: 2, err: fmt.Errorf("--service-level %d: want 0..255", serviceLevel)}
			}
			cfg.Logger = a.logger
			srv, err := simserver.New(cfg)
			if err != nil {
				if errors.Is(err, simserver.ErrInvalidConfig) {
					return &exitError{code: 2, err: err}
				}
				return err
			}
			defer func() {
				if cerr := srv.Close(); cerr != nil {
					a.logger.Error("closing simserver", zap.Error(cerr))
				}
			}()
			srv.SetServiceLevel(byte(serviceLevel))
			ctx := cmd.Context()
			if err := srv.Start(ctx); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "simserver ready endpoint=%s vars=%d\n", srv.Endpoint(), srv.Vars())
			flush(out)
			if !control {
				<-ctx.Done()
				return nil
			}
			return runControl(ctx, srv, cmd.InOrStdin(), out, a.logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Host, "host", cfg.Host, "address to listen on and advertise")
	f.IntVar(&cfg.Port, "port", 0, "port to listen on (0: a free ephemeral port)")
	f.IntVar(&cfg.Vars, "vars", cfg.Vars, "number of variables")
	f.StringVar(&cfg.Type, "type", "", "one type for every variable (default: cycle through all types)")
	f.Float64Var(&cfg.Rate, "rate", 0, "total value changes per second (0: static)")
	f.IntVar(&cfg.Changing, "changing", 0, "how many of the first variables change (0: all)")
	f.StringVar(&cfg.NamespaceURI, "namespace-uri", cfg.NamespaceURI, "namespace URI of the variables")
	f.StringVar(&cfg.ApplicationURI, "application-uri", "", "application URI (default urn:uamirror:simserver:HOST:PORT)")
	f.StringVar(&security, "security", "None", "endpoints to offer, e.g. None,Basic256Sha256:Sign,Basic256Sha256:SignAndEncrypt (None is always offered)")
	f.StringVar(&cfg.CertFile, "cert", "", "server certificate (PEM or DER; default: self-signed, generated)")
	f.StringVar(&cfg.KeyFile, "key", "", "server RSA key (PEM or DER)")
	f.StringArrayVar(&users, "user", nil, "accept only this `user`: NAME:PASSWORD_FILE (repeat; needs a secure --security endpoint)")
	f.StringVar(&cfg.JournalFile, "journal", "", "append every accepted write to this file as a JSON line")
	f.BoolVar(&cfg.RejectTimestamps, "reject-timestamps", false, "answer Bad_WriteNotSupported to writes that carry a timestamp (like some PLCs)")
	f.IntVar(&serviceLevel, "service-level", 255, "initial ServiceLevel (0..255)")
	f.BoolVar(&control, "control", false, "read control commands from stdin (see above)")
	f.DurationVar(&cfg.ClockOffset, "clock-offset", 0, "offset of the server's clock from the system clock (-1h: an hour behind)")
	return cmd
}

// flush pushes out what w buffers, if it buffers.
func flush(w io.Writer) {
	switch f := w.(type) {
	case interface{ Flush() error }:
		_ = f.Flush()
	case interface{ Sync() error }:
		_ = f.Sync() // fails harmlessly on pipes
	}
}

// runControl executes control lines from in until ctx ends or in does.
// The line reader may stay blocked in a read of stdin after we return
// (reads from a terminal or pipe cannot be interrupted); the process exits
// right after, so it is not waited for.
func runControl(ctx context.Context, srv *simserver.Server, in io.Reader, out io.Writer, log *zap.Logger) error {
	lines := make(chan string)
	done := make(chan struct{})
	defer close(done)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-done:
				return
			}
		}
		if err := sc.Err(); err != nil {
			log.Warn("reading control input", zap.Error(err))
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				log.Info("control input ended; stopping")
				return nil
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			reply, err := controlLine(srv, line)
			if err != nil {
				reply = "error " + err.Error()
				log.Warn("control command failed", zap.String("line", line), zap.Error(err))
			}
			fmt.Fprintln(out, reply)
			flush(out)
		}
	}
}

// controlLine executes one control command and returns its reply.
func controlLine(srv *simserver.Server, line string) (string, error) {
	fields := strings.Fields(line)
	varIndex := func(s string) (int, error) {
		i, err := strconv.Atoi(s)
		if err != nil || i < 0 || i >= srv.Vars() {
			return 0, fmt.Errorf("variable %q: want 0..%d", s, srv.Vars()-1)
		}
		return i, nil
	}
	switch cmd := fields[0]; {
	case cmd == "servicelevel" && len(fields) == 2:
		n, err := strconv.ParseUint(fields[1], 10, 8)
		if err != nil {
			return "", fmt.Errorf("servicelevel %q: want 0..255", fields[1])
		}
		srv.SetServiceLevel(byte(n))
		return "ok servicelevel " + fields[1], nil
	case cmd == "set" && len(fields) >= 3:
		i, err := varIndex(fields[1])
		if err != nil {
			return "", err
		}
		// The value is the rest of the line, so that strings keep spaces.
		raw := strings.TrimSpace(line)
		raw = strings.TrimSpace(strings.TrimPrefix(raw, "set"))
		raw = strings.TrimSpace(strings.TrimPrefix(raw, fields[1]))
		typ := srv.TypeOf(i)
		v, err := simserver.ParseValue(typ, raw)
		if err != nil {
			return "", err
		}
		srv.SetValue(i, v, time.Time{}) // source timestamp: now
		return fmt.Sprintf("ok set %d %s", i, typ), nil
	case cmd == "bad" && (len(fields) == 2 || len(fields) == 3):
		i, err := varIndex(fields[1])
		if err != nil {
			return "", err
		}
		code := ua.StatusBadNoCommunication
		if len(fields) == 3 {
			c, err := strconv.ParseUint(fields[2], 0, 32)
			if err != nil || ua.StatusCode(c)&0xC0000000 != 0x80000000 {
				return "", fmt.Errorf("status %q: want a Bad code such as 0x80310000", fields[2])
			}
			code = ua.StatusCode(c)
		}
		srv.SetStatus(i, code)
		return fmt.Sprintf("ok bad %d 0x%08X", i, uint32(code)), nil
	case cmd == "good" && len(fields) == 2:
		i, err := varIndex(fields[1])
		if err != nil {
			return "", err
		}
		srv.SetStatus(i, ua.StatusGood)
		return fmt.Sprintf("ok good %d", i), nil
	case cmd == "clock" && len(fields) == 3 && fields[1] == "step":
		d, err := time.ParseDuration(fields[2])
		if err != nil {
			return "", fmt.Errorf("clock step %q: want a duration such as -1h", fields[2])
		}
		srv.StepClock(d)
		return "ok clock offset " + srv.ClockOffset().String(), nil
	case cmd == "drop" && len(fields) == 1:
		return fmt.Sprintf("ok drop %d", srv.DropConnections()), nil
	}
	return "", fmt.Errorf("unknown command %q (want servicelevel N, set I VALUE, bad I [STATUS], good I, drop or clock step D)", line)
}
