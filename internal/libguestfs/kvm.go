package libguestfs

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// KVM ioctls (linux/kvm.h).
const (
	kvmGetAPIVersion       = 0xAE00
	kvmCreateVM            = 0xAE01
	kvmGetVCPUMmapSize     = 0xAE04
	kvmCreateVCPU          = 0xAE41
	kvmRun                 = 0xAE80
	kvmSetUserMemoryRegion = 0x4020AE46
	kvmSetRegs             = 0x4090AE82
	kvmGetSregs            = 0x8138AE83
	kvmSetSregs            = 0x4138AE84
	kvmGetMSRs             = 0xC008AE88
	kvmSetMSRs             = 0x4008AE89

	kvmExitHLT           = 5
	kvmExitInternalError = 17

	msrArchCapabilities = 0x10a
)

func ioctl(fd uintptr, req, arg uintptr) (uintptr, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, req, arg)
	if errno != 0 {
		return r, errno
	}
	return r, nil
}

// kvmUsable checks, in microseconds, that KVM can run a guest the way qemu
// will: the device answers, a one-instruction guest halts cleanly, and the
// IA32_ARCH_CAPABILITIES MSR that qemu's "-cpu max" copies from the host
// can be set. Hosts with broken nested virtualisation fail the last two,
// and qemu would then abort or hang instead of failing fast.
func kvmUsable(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("KVM unavailable: %w", err)
	}
	defer f.Close()
	sys := f.Fd()
	if v, err := ioctl(sys, kvmGetAPIVersion, 0); err != nil || v != 12 {
		return fmt.Errorf("KVM unavailable: %s: API version %d (%v), want 12", dev, v, err)
	}
	vmfd, err := ioctl(sys, kvmCreateVM, 0)
	if err != nil {
		return fmt.Errorf("KVM unavailable: KVM_CREATE_VM: %w", err)
	}
	defer syscall.Close(int(vmfd))

	mem, err := syscall.Mmap(-1, 0, 0x2000, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_ANONYMOUS)
	if err != nil {
		return fmt.Errorf("KVM self-test: mmap: %w", err)
	}
	defer syscall.Munmap(mem)
	mem[0x1000] = 0xf4 // hlt
	region := struct {
		slot, flags           uint32
		guestPhys, size, user uint64
	}{0, 0, 0, 0x2000, uint64(uintptr(unsafe.Pointer(&mem[0])))}
	if _, err := ioctl(vmfd, kvmSetUserMemoryRegion, uintptr(unsafe.Pointer(&region))); err != nil {
		return fmt.Errorf("KVM unavailable: KVM_SET_USER_MEMORY_REGION: %w", err)
	}
	vcpu, err := ioctl(vmfd, kvmCreateVCPU, 0)
	if err != nil {
		return fmt.Errorf("KVM unavailable: KVM_CREATE_VCPU: %w", err)
	}
	defer syscall.Close(int(vcpu))

	if err := setArchCapabilities(sys, vcpu); err != nil {
		return err
	}

	var sregs [312]byte
	if _, err := ioctl(vcpu, kvmGetSregs, uintptr(unsafe.Pointer(&sregs[0]))); err != nil {
		return fmt.Errorf("KVM self-test: KVM_GET_SREGS: %w", err)
	}
	// Real mode, cs.base = 0, cs.selector = 0 (kvm_segment: base u64, limit u32, selector u16).
	*(*uint64)(unsafe.Pointer(&sregs[0])) = 0
	*(*uint16)(unsafe.Pointer(&sregs[12])) = 0
	if _, err := ioctl(vcpu, kvmSetSregs, uintptr(unsafe.Pointer(&sregs[0]))); err != nil {
		return fmt.Errorf("KVM self-test: KVM_SET_SREGS: %w", err)
	}
	var regs [18]uint64 // rax..r15, rip, rflags
	regs[16], regs[17] = 0x1000, 2
	if _, err := ioctl(vcpu, kvmSetRegs, uintptr(unsafe.Pointer(&regs[0]))); err != nil {
		return fmt.Errorf("KVM self-test: KVM_SET_REGS: %w", err)
	}
	size, err := ioctl(sys, kvmGetVCPUMmapSize, 0)
	if err != nil {
		return fmt.Errorf("KVM self-test: KVM_GET_VCPU_MMAP_SIZE: %w", err)
	}
	run, err := syscall.Mmap(int(vcpu), 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("KVM self-test: mmap kvm_run: %w", err)
	}
	defer syscall.Munmap(run)
	if _, err := ioctl(vcpu, kvmRun, 0); err != nil {
		return fmt.Errorf("KVM broken: KVM_RUN: %w", err)
	}
	switch reason := *(*uint32)(unsafe.Pointer(&run[8])); reason {
	case kvmExitHLT:
		return nil
	case kvmExitInternalError:
		return fmt.Errorf("KVM broken: a test guest stopped with a KVM internal error")
	default:
		return fmt.Errorf("KVM broken: a test guest exited with reason %d instead of HLT", reason)
	}
}

// setArchCapabilities does what qemu does for "-cpu max": read the host's
// supported IA32_ARCH_CAPABILITIES and set it on a vCPU. Kernels without
// feature-MSR support skip the check.
func setArchCapabilities(sys, vcpu uintptr) error {
	msrs := struct {
		n, pad      uint32
		index, resv uint32
		data        uint64
	}{n: 1, index: msrArchCapabilities}
	got, err := ioctl(sys, kvmGetMSRs, uintptr(unsafe.Pointer(&msrs)))
	if err != nil || got != 1 {
		return nil
	}
	set, err := ioctl(vcpu, kvmSetMSRs, uintptr(unsafe.Pointer(&msrs)))
	if err != nil || set != 1 {
		return fmt.Errorf("KVM broken: cannot set MSR 0x%x (IA32_ARCH_CAPABILITIES) to the host's value %#x; qemu would fail", msrArchCapabilities, msrs.data)
	}
	return nil
}

// KVMUsable reports whether KVM passes the self-test on this host; nil
// means a KVM launch is expected to work.
func KVMUsable() error { return kvmUsable("/dev/kvm") }
