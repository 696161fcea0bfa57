//go:build !linux

package localrun

import "syscall"

// procAttr puts the runner in its own process group, so that a kill
// reaches qemu and every helper.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
