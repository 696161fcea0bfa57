package libguestfs

import "testing"

func TestUserDevice(t *testing.T) {
	for in, want := range map[string]string{
		"/dev/sda2": "/dev/sda2", "/dev/sdb2": "/dev/sda2", "/dev/sdb": "/dev/sda",
		"/dev/vda1": "/dev/vda1", "/dev/md0": "/dev/md0", "/dev/sd": "/dev/sd",
		"/dev/sdbvg/root": "/dev/sdbvg/root", "/dev/sdb/x": "/dev/sdb/x",
	} {
		if got := userDevice(in); got != want {
			t.Errorf("userDevice(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestUserName(t *testing.T) {
	for in, want := range map[string]string{
		"btrfsvol:/dev/sdb3/root": "btrfsvol:/dev/sda3/root", "btrfsvol:/dev/sda3/a/b": "btrfsvol:/dev/sda3/a/b",
		"/dev/sdb1": "/dev/sda1", "/dev/VG/root": "/dev/VG/root", "btrfsvol:/dev/vda2/@": "btrfsvol:/dev/vda2/@",
	} {
		if got := userName(in); got != want {
			t.Errorf("userName(%s) = %s, want %s", in, got, want)
		}
	}
}
