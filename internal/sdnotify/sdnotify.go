// Package sdnotify speaks systemd's notify protocol (sd_notify(3)): it tells
// the service manager when the daemon is ready, reloading and stopping, and
// pets the watchdog. Without $NOTIFY_SOCKET every call does nothing.
package sdnotify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to the service manager.
type Notifier struct {
	addr *net.UnixAddr // nil: not run under systemd (Type=notify)
}

// FromEnv reads $NOTIFY_SOCKET. An abstract socket is written "@name".
func FromEnv() *Notifier {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return &Notifier{}
	}
	return &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
}

// Send sends one datagram of newline-separated assignments.
func (n *Notifier) Send(state string) error {
	if n.addr == nil {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Ready says start-up (or a reload) is complete.
func (n *Notifier) Ready(status string) error {
	return n.Send("READY=1\nSTATUS=" + status)
}

// Reloading says a reload begins. systemd (Type=notify-reload, and
// ExecReload with Type=notify) wants the monotonic time with it, in the
// same datagram, to tell this reload from an earlier one.
func (n *Notifier) Reloading() error {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return err
	}
	usec := ts.Sec*1_000_000 + ts.Nsec/1_000
	return n.Send("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(usec, 10))
}

// Stopping says shutdown begins.
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// WatchdogInterval is half of $WATCHDOG_USEC when the watchdog is on for
// this process, else 0.
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// Watchdog sends WATCHDOG=1 every interval while alive() holds, until ctx
// ends. A daemon that stops serving stops petting, and systemd restarts it.
func (n *Notifier) Watchdog(ctx context.Context, interval time.Duration, alive func() bool) {
	if n.addr == nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			// Both cases may be ready at once; a stopping daemon must not
			// pet, whichever select picked.
			if ctx.Err() == nil && alive() {
				n.Send("WATCHDOG=1")
			}
		}
	}
}
