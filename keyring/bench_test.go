package keyring

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oci-keyring-hook/oci-keyring-hook/test/standin"
	"github.com/oci-keyring-hook/oci-keyring-hook/test/testutil"
)

// BenchmarkInject is the hook's own work per container: the install
// algorithm run inside a stand-in init through the ptrace engine, from
// seizing the thread to detaching. One stand-in serves every iteration: it
// is back in its blocking call after each, as a container's init would be.
// Besides ns/op and allocations it reports the three phases of Timings:
// enter (seize, stop, save), work (the remote calls) and leave (unmap,
// restore, detach), in microseconds per container.
//
//	go test -run '^$' -bench Inject -benchmem ./keyring
func BenchmarkInject(b *testing.B) {
	testutil.RequiresRoot(b)
	for _, kind := range []standin.Kind{standin.GoRead, standin.CRead} {
		for _, mode := range []Mode{Named, Anonymous} {
			b.Run(fmt.Sprintf("%s/%s", kind, mode), func(b *testing.B) {
				benchInject(b, kind, mode)
			})
		}
	}
}

func blockedNr(kind standin.Kind) int {
	if kind == standin.GoRecvfrom || kind == standin.CRecvfrom {
		return unix.SYS_RECVFROM
	}
	return unix.SYS_READ
}

func benchInject(b *testing.B, kind standin.Kind, mode Mode) {
	p := standin.Start(b, kind)
	var sum Timings
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 {
			// The thread resumes on its own after a detach; a container's
			// init is blocked in its call when a hook runs, so wait for
			// that (outside the timed region).
			b.StopTimer()
			if err := standin.WaitBlocked(p.Pid, blockedNr(kind), 5*time.Second); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		req := Request{Mode: mode, Name: fmt.Sprintf("okh-bench-%d-%d", p.Pid, i), Perm: DefaultPerm}
		tm, err := Inject(p.Pid, Options{Timeout: 5 * time.Second}, func(s Syscaller) error {
			_, err := Install(s, req)
			return err
		})
		if err != nil {
			b.Fatalf("Inject: %v (target: %s)", err, standin.State(p.Pid))
		}
		sum.Enter += tm.Enter
		sum.Work += tm.Work
		sum.Leave += tm.Leave
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(sum.Enter.Nanoseconds())/n/1e3, "enter-µs/op")
	b.ReportMetric(float64(sum.Work.Nanoseconds())/n/1e3, "calls-µs/op")
	b.ReportMetric(float64(sum.Leave.Nanoseconds())/n/1e3, "leave-µs/op")
	// The stand-in must still be healthy: its call completes normally.
	if err := p.Release("hello"); err != nil {
		b.Fatal(err)
	}
	rep, _, err := p.Finish(10 * time.Second)
	if err != nil {
		b.Fatal(err)
	}
	if kind != standin.CNanosleep && (rep.Ret != 5 || rep.Data != "hello") {
		b.Fatalf("after %d injections the stand-in's %s ended with %+v", b.N, rep.Call, rep)
	}
}
