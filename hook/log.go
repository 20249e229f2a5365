package main

import (
	"fmt"
	"io"
	"log/syslog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/sirupsen/logrus"
	lsyslog "github.com/sirupsen/logrus/hooks/syslog"
)

// syslogSocket is where syslog listens; runtimes throw away a successful
// hook's output, so syslog is the default destination when it exists.
const syslogSocket = "/dev/log"

// setupLogging points log at --log-file, else syslog, else stderr, and
// reports whether the destination is stderr (so failures are not printed
// there twice).
func setupLogging(log *logrus.Logger, file, level, format string) (toStderr bool, closeFn func(), err error) {
	closeFn = func() {}
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return false, closeFn, fmt.Errorf("--log-level %q: want one of panic, fatal, error, warn, info, debug, trace", level)
	}
	log.SetLevel(lvl)
	switch format {
	case "text":
		log.SetFormatter(utcFormatter{&logrus.TextFormatter{DisableColors: true, FullTimestamp: true}})
	case "json":
		log.SetFormatter(utcFormatter{&logrus.JSONFormatter{}})
	default:
		return false, closeFn, fmt.Errorf("--log-format %q: want text or json", format)
	}
	switch {
	case file != "":
		f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o640)
		if err != nil {
			return false, closeFn, fmt.Errorf("--log-file: %w", err)
		}
		log.SetOutput(f)
		return false, func() { f.Close() }, nil
	case syslogAvailable():
		h, err := lsyslog.NewSyslogHook("", "", syslog.LOG_INFO|syslog.LOG_DAEMON, "oci-keyring-hook")
		if err == nil {
			log.AddHook(h)
			log.SetOutput(io.Discard)
			return false, func() { h.Writer.Close() }, nil
		}
	}
	log.SetOutput(os.Stderr)
	return true, closeFn, nil
}

func syslogAvailable() bool {
	fi, err := os.Stat(syslogSocket)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// utcFormatter stamps lines in UTC. Local time would make the first line
// load the time zone (/etc/localtime; runtimes run hooks without TZ) while
// the runtime waits for the hook to exit.
type utcFormatter struct{ logrus.Formatter }

func (f utcFormatter) Format(e *logrus.Entry) ([]byte, error) {
	e.Time = e.Time.UTC()
	return f.Formatter.Format(e)
}
