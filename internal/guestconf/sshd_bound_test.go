package guestconf

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// An Include fan-out within sshd's depth limit must still end quickly:
// 20 includes per file over 6 levels would be 64 million reads.
func TestSSHDIncludeFanOutBounded(t *testing.T) {
	fsys := fstest.MapFS{"etc/ssh/sshd_config": file("Include /etc/ssh/l0\n"), "etc/ssh/l6": file("Port 22\n")}
	for i := 0; i < 6; i++ {
		fsys[fmt.Sprintf("etc/ssh/l%d", i)] = file(strings.Repeat(fmt.Sprintf("Include /etc/ssh/l%d\n", i+1), 20))
	}
	start := time.Now()
	_, err := ParseSSHD(fsys)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d files", SSHDMaxFiles)) {
		t.Errorf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
	// A config with many drop-ins below the bound still parses.
	fsys = fstest.MapFS{"etc/ssh/sshd_config": file("Include /etc/ssh/sshd_config.d/*.conf\n")}
	for i := 0; i < SSHDMaxFiles-1; i++ {
		fsys[fmt.Sprintf("etc/ssh/sshd_config.d/%03d.conf", i)] = file("Port 22\n")
	}
	if c, err := ParseSSHD(fsys); err != nil || len(c.Files) != SSHDMaxFiles {
		t.Errorf("%d drop-ins: err %v", SSHDMaxFiles-1, err)
	}
}
