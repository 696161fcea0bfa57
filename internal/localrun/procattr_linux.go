package localrun

import "syscall"

// procAttr puts the runner in its own process group, so that a kill
// reaches qemu and every helper, and kills it if the dispatcher dies, so
// that no orphan runs a job that the next dispatcher launches again.
// (Pdeathsig fires when the thread that started the runner exits; the Go
// runtime ends threads only for goroutines that exit locked to one.)
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
