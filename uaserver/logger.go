package uaserver

import (
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
)

// libLogger adapts zap to gopcua's server.Logger, whose messages are
// printf templates. gopcua logs every connection, request and subscription
// at Debug or Info and routine disconnects at Warn or Error, so Info is
// lowered to Debug and Warn and Error to Info. While mute is set (during
// gopcua's server.New, which reports ~100 "Duplicate reference type"
// errors importing its own nodeset) nothing is logged.
type libLogger struct {
	s    *zap.SugaredLogger
	mute *atomic.Bool
}

func (l libLogger) Debug(msg string, args ...any) { l.log(l.s.Debugf, msg, args) }
func (l libLogger) Info(msg string, args ...any)  { l.log(l.s.Debugf, msg, args) }
func (l libLogger) Warn(msg string, args ...any)  { l.log(l.s.Infof, msg, args) }
func (l libLogger) Error(msg string, args ...any) { l.log(l.s.Infof, msg, args) }

func (l libLogger) log(f func(string, ...any), msg string, args []any) {
	if !l.mute.Load() {
		f(strings.TrimSpace(msg), args...)
	}
}
