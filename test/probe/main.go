// Command probe is the tiny static program the end-to-end tests put into a
// throwaway container rootfs as /probe. It reports, from inside the container,
// which session keyring the container's process really has.
//
// Every subcommand prints exactly one JSON line (a Report) on stdout (with
// -format fields, show prints "serial perm type name" of @s instead, for
// shell scripts such as hack/demo.sh). With
// -marker it then prints "probe-marker: <text>" on stdout and stderr, and with
// -exit it exits with that status, so tests can check that a hook changes
// neither the container's output nor its exit status.
//
//	probe show   [-find D] [-marker M] [-exit N]
//	    Describe @s and @u; with -find, KEYCTL_SEARCH @s for a "user" key D
//	    and try to read it.
//	probe wait   [-find D] [-marker M]
//	    As show, then wait until SIGTERM/SIGINT (a long-lived init).
//	probe victim -desc D -payload P [-marker M]
//	    Add a "user" key D=P to @s, report, then wait until SIGTERM/SIGINT.
//	probe join   -name N [-find D] [-marker M] [-exit N]
//	    KEYCTL_JOIN_SESSION_KEYRING(N), describe the joined @s and, with
//	    -find, KEYCTL_SEARCH it for a "user" key D and try to read it.
//	probe read   -serial S [-marker M] [-exit N]
//	    KEYCTL_READ the key S by its serial, as a guesser would; the
//	    outcome is in "key" (payload, or the error).
//
// Build it with CGO_ENABLED=0 so it runs in a rootfs without a libc.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// KEYCTL_JOIN_SESSION_KEYRING and friends act on the calling thread only:
// keep every keyctl call of this program on the main thread.
func init() { runtime.LockOSThread() }

// Keyring is KEYCTL_DESCRIBE of one key, plus its serial.
type Keyring struct {
	Serial int    `json:"serial"`
	Type   string `json:"type,omitempty"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid"`
	Perm   string `json:"perm,omitempty"` // "0x3f010000"
	Name   string `json:"name,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Key is the outcome of adding (victim) or searching for (join) a user key.
type Key struct {
	Description string `json:"description"`
	Serial      int    `json:"serial,omitempty"`
	Found       bool   `json:"found"`
	Readable    bool   `json:"readable"`
	Payload     string `json:"payload,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Report is the single JSON line every subcommand prints.
type Report struct {
	Cmd     string   `json:"cmd"`
	PID     int      `json:"pid"`
	UID     int      `json:"uid"`
	Marker  string   `json:"marker,omitempty"`
	Session *Keyring `json:"session"`          // @s (before the join, for "join")
	User    *Keyring `json:"user"`             // @u
	Joined  *Keyring `json:"joined,omitempty"` // join: the keyring now in @s
	Key     *Key     `json:"key,omitempty"`
	Error   string   `json:"error,omitempty"`
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	marker := fs.String("marker", "", "print this marker after the report")
	exit := fs.Int("exit", 0, "exit with this status")
	format := fs.String("format", "json", "report format: json, or fields (show: \"serial perm type name\" of @s)")
	desc := fs.String("desc", "probe-secret", "key description (victim, join -find)")
	payload := fs.String("payload", "", "key payload (victim)")
	name := fs.String("name", "", "keyring name to join (join)")
	find := fs.String("find", "", "user key description to search for in @s (show) or in the joined keyring (join)")
	serial := fs.Int("serial", 0, "key serial to read (read)")

	r := &Report{Cmd: cmd, PID: os.Getpid(), UID: os.Getuid()}
	switch cmd {
	case "show", "wait":
		_ = fs.Parse(args)
		r.Session = describe(unix.KEY_SPEC_SESSION_KEYRING)
		r.User = describe(unix.KEY_SPEC_USER_KEYRING)
		if *find != "" && r.Session.Error == "" {
			r.Key = search(r.Session.Serial, *find)
		}
	case "victim":
		_ = fs.Parse(args)
		r.Session = describe(unix.KEY_SPEC_SESSION_KEYRING)
		r.User = describe(unix.KEY_SPEC_USER_KEYRING)
		r.Key = &Key{Description: *desc}
		id, err := unix.AddKey("user", *desc, []byte(*payload), unix.KEY_SPEC_SESSION_KEYRING)
		if err != nil {
			r.Key.Error = "add_key: " + err.Error()
			r.Error = r.Key.Error
		} else {
			r.Key.Serial, r.Key.Found = id, true
			r.Key.Payload, r.Key.Readable = read(id, r.Key)
		}
	case "join":
		_ = fs.Parse(args)
		if *name == "" {
			fatalf("join: -name is required")
		}
		r.Session = describe(unix.KEY_SPEC_SESSION_KEYRING)
		r.User = describe(unix.KEY_SPEC_USER_KEYRING)
		if _, err := unix.KeyctlJoinSessionKeyring(*name); err != nil {
			r.Error = "join " + strconv.Quote(*name) + ": " + err.Error()
			break
		}
		r.Joined = describe(unix.KEY_SPEC_SESSION_KEYRING)
		if *find != "" {
			r.Key = search(r.Joined.Serial, *find)
		}
	case "read":
		_ = fs.Parse(args)
		r.Session = describe(unix.KEY_SPEC_SESSION_KEYRING)
		r.User = describe(unix.KEY_SPEC_USER_KEYRING)
		r.Key = &Key{Serial: *serial}
		r.Key.Payload, r.Key.Readable = read(*serial, r.Key)
		r.Key.Found = r.Key.Readable
	default:
		usage()
	}
	r.Marker = *marker

	switch *format {
	case "json":
		b, err := json.Marshal(r)
		if err != nil {
			fatalf("marshal: %v", err)
		}
		fmt.Println(string(b))
	case "fields":
		if k := r.Session; k.Error != "" {
			fmt.Printf("%d - - %s\n", k.Serial, k.Error)
		} else {
			fmt.Printf("%d %s %s %s\n", k.Serial, k.Perm, k.Type, k.Name)
		}
	default:
		fatalf("unknown -format %q", *format)
	}
	if *marker != "" {
		fmt.Println("probe-marker: " + *marker)
		fmt.Fprintln(os.Stderr, "probe-marker: "+*marker)
	}
	if cmd == "victim" || cmd == "wait" {
		wait()
	}
	os.Exit(*exit)
}

// describe returns the serial and KEYCTL_DESCRIBE of a special keyring id,
// without creating it (KEYCTL_GET_KEYRING_ID with create=0).
func describe(special int) *Keyring {
	k := &Keyring{UID: -1, GID: -1}
	id, err := unix.KeyctlGetKeyringID(special, false)
	if err != nil {
		k.Error = "get_keyring_id: " + err.Error()
		return k
	}
	k.Serial = id
	d, err := unix.KeyctlString(unix.KEYCTL_DESCRIBE, id)
	if err != nil {
		k.Error = "describe: " + err.Error()
		return k
	}
	// "type;uid;gid;perm;description" (the description may contain ';').
	f := strings.SplitN(d, ";", 5)
	if len(f) != 5 {
		k.Error = "describe: unexpected " + strconv.Quote(d)
		return k
	}
	k.Type, k.Name = f[0], f[4]
	k.UID, _ = strconv.Atoi(f[1])
	k.GID, _ = strconv.Atoi(f[2])
	if p, err := strconv.ParseUint(f[3], 16, 32); err == nil {
		k.Perm = fmt.Sprintf("0x%08x", p)
	} else {
		k.Perm = f[3]
	}
	return k
}

// search looks for a "user" key in ring (recursively, as KEYCTL_SEARCH does)
// and tries to read its payload.
func search(ring int, desc string) *Key {
	k := &Key{Description: desc}
	id, err := unix.KeyctlSearch(ring, "user", desc, 0)
	if err != nil {
		k.Error = "search: " + err.Error()
		return k
	}
	k.Serial, k.Found = id, true
	k.Payload, k.Readable = read(id, k)
	return k
}

func read(id int, k *Key) (string, bool) {
	buf := make([]byte, 4096)
	n, err := unix.KeyctlBuffer(unix.KEYCTL_READ, id, buf, 0)
	if err != nil {
		k.Error = "read: " + err.Error()
		return "", false
	}
	if n > len(buf) {
		n = len(buf)
	}
	return string(buf[:n]), true
}

// wait blocks until SIGTERM or SIGINT. As a container's pid 1 the probe has
// to handle the signals itself, or the kernel would ignore them.
func wait() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: probe show|wait|victim|join|read [flags]")
	os.Exit(2)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "probe: "+format+"\n", args...)
	os.Exit(2)
}
