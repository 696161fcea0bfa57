package testenv

import "syscall"

// The server dies with the test binary, even one killed by -timeout.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
