package libguestfs

import "testing"

func TestUserDevice(t *testing.T) {
	for in, want := range map[string]string{
		"/dev/sda2": "/dev/sda2", "/dev/sdb2": "/dev/sda2", "/dev/sdb": "/dev/sda",
		"/dev/vda1": "/dev/vda1", "/dev/md0": "/dev/md0", "/dev/sd": "/dev/sd",
	} {
		if got := userDevice(in); got != want {
			t.Errorf("userDevice(%s) = %s, want %s", in, got, want)
		}
	}
}
