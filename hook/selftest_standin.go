package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/keyring"
)

// standinArg, as the only argument, makes the binary the self-test's
// stand-in for a container's init. It is not a command for people.
const standinArg = "__okh-check-standin"

// The stand-in runs from init, before main, on the main thread, and never
// returns: the keyring the self-test installs belongs to the thread that
// was blocked (tid == pid), so everything it reports is read from there.
// runc's own "runc init" is entered the same way.
func init() {
	if len(os.Args) == 2 && os.Args[1] == standinArg {
		runtime.LockOSThread()
		os.Exit(runStandin())
	}
}

// standinReport is what the stand-in says after its read returns.
type standinReport struct {
	Pid       int    `json:"pid"`
	Tid       int    `json:"tid"`
	Ret       int    `json:"ret"`
	Errno     int    `json:"errno,omitempty"`
	Data      string `json:"data"`
	Serial    int32  `json:"serial"`
	Keyring   string `json:"keyring"` // KEYCTL_DESCRIBE of @s
	TracerPid int    `json:"tracer_pid"`
	Err       string `json:"error,omitempty"`
}

// standinReady is the line the stand-in prints just before it blocks.
const standinReady = "ready"

// runStandin blocks in read(2) on fd 3 like runc init on its sync pipe,
// then reports on stdout how the read ended and its session keyring.
func runStandin() int {
	rep := standinReport{Pid: unix.Getpid(), Tid: unix.Gettid()}
	// Not dumpable, as runc init: attaching then needs CAP_SYS_PTRACE
	// whatever the uids, so the self-test asks what the hook will need.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		rep.Err = fmt.Sprintf("prctl(PR_SET_DUMPABLE, 0): %v", err)
		return writeStandinReport(rep)
	}
	fmt.Println(standinReady)
	buf := make([]byte, 256)
	n, err := unix.Read(3, buf)
	if err != nil {
		rep.Ret, rep.Errno = -1, int(err.(unix.Errno))
	} else {
		rep.Ret, rep.Data = n, string(buf[:n])
	}
	if n == 0 && err == nil {
		return 1 // the self-test went away
	}
	serial, desc, err := keyring.Session()
	rep.Serial, rep.Keyring = serial, desc.String()
	if err != nil {
		rep.Err = err.Error()
	}
	rep.TracerPid, _ = keyring.TracerPid(rep.Pid)
	return writeStandinReport(rep)
}

func writeStandinReport(rep standinReport) int {
	b, _ := json.Marshal(rep)
	if _, err := fmt.Printf("%s\n", b); err != nil || rep.Err != "" {
		return 1
	}
	return 0
}
