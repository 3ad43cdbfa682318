package turn

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/pion/logging"
)

// pionLogs sends pion's log lines to slog: its warnings and errors as
// warnings, the rest (per-packet notes among them) at debug.
type pionLogs struct{ log *slog.Logger }

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope)}
}

// pionLogger is one pion scope's [logging.LeveledLogger].
type pionLogger struct{ log *slog.Logger }

func (l pionLogger) logf(level slog.Level, format string, args []any) {
	if l.log.Enabled(context.Background(), level) { // pion formats per packet at debug
		l.log.Log(context.Background(), level, strings.TrimSpace(fmt.Sprintf(format, args...)))
	}
}

func (l pionLogger) Trace(string)              {}
func (l pionLogger) Tracef(string, ...any)     {}
func (l pionLogger) Debug(m string)            { l.logf(slog.LevelDebug, "%s", []any{m}) }
func (l pionLogger) Debugf(f string, a ...any) { l.logf(slog.LevelDebug, f, a) }
func (l pionLogger) Info(m string)             { l.logf(slog.LevelDebug, "%s", []any{m}) }
func (l pionLogger) Infof(f string, a ...any)  { l.logf(slog.LevelDebug, f, a) }
func (l pionLogger) Warn(m string)             { l.logf(slog.LevelWarn, "%s", []any{m}) }
func (l pionLogger) Warnf(f string, a ...any)  { l.logf(slog.LevelWarn, f, a) }
func (l pionLogger) Error(m string)            { l.logf(slog.LevelWarn, "%s", []any{m}) }
func (l pionLogger) Errorf(f string, a ...any) { l.logf(slog.LevelWarn, f, a) }
