package cli

import (
	"context"
	"fmt"

	"guestkit.io/batch/internal/libguestfs"
	"guestkit.io/batch/internal/result"
)

// KVMCheckCmd runs the KVM self-test that --accel auto uses.
type KVMCheckCmd struct{}

// Run prints "kvm ok", or why KVM is unusable and exits 5.
func (k *KVMCheckCmd) Run(_ context.Context, deps Deps) error {
	if err := libguestfs.KVMUsable(); err != nil {
		fmt.Fprintf(deps.Stdout, "kvm unusable: %v\nthe runner will use TCG (software emulation)\n", err)
		return &ExitError{Code: result.ExitInfra, Err: err, logged: true}
	}
	fmt.Fprintln(deps.Stdout, "kvm ok")
	return nil
}
