package redundancy

import (
	"bytes"
	"encoding/json"
	"sync"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
)

// NewHCLogger returns an hclog.Logger for hashicorp libraries (raft) that
// writes every line through zap: hclog formats JSON, the writer decodes
// it and logs the message with its fields at the matching zap level.
func NewHCLogger(log *zap.Logger, name string) hclog.Logger {
	lvl := hclog.Info
	if log.Core().Enabled(zap.DebugLevel) {
		lvl = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:        name,
		Level:       lvl,
		JSONFormat:  true,
		DisableTime: true,
		Output:      &zapWriter{log: log.Named(name)},
	})
}

// zapWriter turns hclog's JSON lines into zap entries. hclog writes one
// whole line per Write call under its own lock; mu guards buf anyway.
type zapWriter struct {
	log *zap.Logger
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *zapWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadBytes('\n')
		if err != nil {
			// Incomplete line: keep it for the next write.
			w.buf.Reset()
			w.buf.Write(line)
			return len(p), nil
		}
		w.emit(line)
	}
}

func (w *zapWriter) emit(line []byte) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		w.log.Info(string(bytes.TrimSpace(line)))
		return
	}
	msg, _ := m["@message"].(string)
	level, _ := m["@level"].(string)
	fields := make([]zap.Field, 0, len(m))
	for k, v := range m {
		if k == "@message" || k == "@level" || k == "@module" || k == "@timestamp" {
			continue
		}
		fields = append(fields, zap.Any(k, v))
	}
	switch level {
	case "trace", "debug":
		w.log.Debug(msg, fields...)
	case "warn":
		w.log.Warn(msg, fields...)
	case "error":
		w.log.Error(msg, fields...)
	default:
		w.log.Info(msg, fields...)
	}
}
