// Package libguestfs runs the libguestfs appliance on one disk image. It is
// the only package that imports the libguestfs bindings: inspection and
// profiling see the guest through guest.FS and inspect.Backend.
package libguestfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"
	"libguestfs.org/guestfs"

	"guestkit.io/batch/internal/result"
)

// Accelerator choices.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// Options configure a launch.
type Options struct {
	Image  string
	Format string // required: never let qemu guess
	// NBD, when set, is the unix socket of an NBD export that holds the
	// image (block.Export of a remote object): the appliance reads it
	// there, and Image only names it in messages. ExportName is the
	// export's name ("": the server's default export).
	NBD        string
	ExportName string
	// VirtualSize is the probed disk size, which saves a call (0: ask).
	VirtualSize int64
	Accel       string // auto (default), kvm or tcg
	// MemoryMB is the appliance memory (0: libguestfs default).
	MemoryMB int
	// KVMDevice is checked before trying KVM (default /dev/kvm).
	KVMDevice string
	// KVMLaunchTimeout bounds a KVM launch in auto mode (default 60s): a
	// healthy one takes seconds, a broken one can hang until killed.
	KVMLaunchTimeout time.Duration
	Log              logrus.FieldLogger
}

// Session is one launched appliance with one read-only drive.
type Session struct {
	mu    sync.Mutex // a handle runs one call at a time
	g     *guestfs.Guestfs
	accel result.Accelerator
	pid   atomic.Int64 // read by the context watcher without the lock
	size  int64
	log   logrus.FieldLogger
	stop  func() bool
	// roots maps the root names Roots returned to libguestfs's own.
	roots atomic.Pointer[map[string]string]
}

// LaunchError is a failure to start the appliance.
type LaunchError struct {
	Accel string
	Err   error
}

func (e *LaunchError) Error() string {
	return fmt.Sprintf("launch appliance (%s): %v", e.Accel, e.Err)
}

func (e *LaunchError) Unwrap() error { return e.Err }

// Launch starts the appliance. With AccelAuto it uses KVM when /dev/kvm is
// usable and falls back to TCG when KVM is missing or qemu dies with it, as
// it does on hosts with broken nested virtualisation. When ctx ends, the
// appliance is killed and every pending call fails.
func Launch(ctx context.Context, opts Options) (*Session, error) {
	if opts.Format == "" {
		return nil, errors.New("launch: image format is required")
	}
	if opts.Log == nil {
		opts.Log = logrus.New()
	}
	if opts.KVMDevice == "" {
		opts.KVMDevice = "/dev/kvm"
	}
	if opts.KVMLaunchTimeout == 0 {
		opts.KVMLaunchTimeout = 60 * time.Second
	}
	req := opts.Accel
	if req == "" {
		req = AccelAuto
	}
	switch req {
	case AccelTCG:
		return launchOnce(ctx, opts, true, result.Accelerator{Requested: req})
	case AccelKVM:
		if err := kvmUsable(opts.KVMDevice); err != nil {
			return nil, &LaunchError{Accel: AccelKVM, Err: err}
		}
		return launchOnce(ctx, opts, false, result.Accelerator{Requested: req})
	case AccelAuto:
	default:
		return nil, fmt.Errorf("launch: unknown accelerator %q (want auto, kvm or tcg)", req)
	}
	if err := kvmUsable(opts.KVMDevice); err != nil {
		return launchOnce(ctx, opts, true, result.Accelerator{Requested: req, Fallback: err.Error()})
	}
	s, err := launchOnce(ctx, opts, false, result.Accelerator{Requested: req})
	if err == nil || ctx.Err() != nil {
		return s, err
	}
	reason := "KVM launch failed: " + lastLine(err.Error())
	opts.Log.WithFields(logrus.Fields{"image": opts.Image, "error": err}).Warn("KVM launch failed, falling back to TCG")
	return launchOnce(ctx, opts, true, result.Accelerator{Requested: req, Fallback: reason})
}

// launchOnce starts the appliance once, with KVM or with TCG.
func launchOnce(ctx context.Context, opts Options, tcg bool, acc result.Accelerator) (*Session, error) {
	name := AccelKVM
	if tcg {
		name = AccelTCG
	}
	g, err := guestfs.Create()
	if err != nil {
		return nil, &LaunchError{Accel: name, Err: err}
	}
	s := &Session{g: g, accel: acc, log: opts.Log, size: opts.VirtualSize}
	fail := func(err error) (*Session, error) {
		g.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("launch appliance: %w", ctx.Err())
		}
		return nil, &LaunchError{Accel: name, Err: err}
	}
	runtime.LockOSThread() // see call
	defer runtime.UnlockOSThread()
	silence(g)
	if err := configure(g, opts, tcg); err != nil {
		return fail(err)
	}
	// Only an automatic KVM attempt has a deadline: TCG is the fallback.
	if err := s.boot(ctx, opts.KVMLaunchTimeout, !tcg && acc.Requested == AccelAuto); err != nil {
		return fail(err)
	}
	s.stop = context.AfterFunc(ctx, s.kill)
	pid, err := g.Get_pid()
	if err == nil {
		s.pid.Store(int64(pid))
	}
	if ctx.Err() != nil {
		s.Close()
		return nil, fmt.Errorf("launch appliance: %w", ctx.Err())
	}
	s.accel.Used = name
	if !tcg && pid > 0 && !usesKVM(pid) {
		s.accel.Used = AccelTCG
		s.accel.Fallback = "qemu did not open /dev/kvm"
	}
	return s, nil
}

// configure sets up the handle before launch: backend, memory, no
// network, and the image as a read-only drive.
func configure(g *guestfs.Guestfs, opts Options, tcg bool) error {
	settings := []string{}
	if tcg {
		settings = append(settings, "force_tcg")
	}
	if err := g.Set_backend("direct"); err != nil {
		return err
	}
	if err := g.Set_backend_settings(settings); err != nil {
		return err
	}
	if opts.MemoryMB > 0 {
		if err := g.Set_memsize(opts.MemoryMB); err != nil {
			return err
		}
	}
	// No network: an untrusted guest gets no way out.
	if err := g.Set_network(false); err != nil {
		return err
	}
	if err := g.Set_identifier("guestkit"); err != nil {
		return err
	}
	if opts.NBD != "" {
		// The drive's filename is the export's name; qemu's format
		// driver reads the image from the export, never probing it.
		return g.Add_drive(opts.ExportName, &guestfs.OptargsAdd_drive{
			Readonly_is_set: true, Readonly: true,
			Format_is_set: true, Format: opts.Format,
			Protocol_is_set: true, Protocol: "nbd",
			Server_is_set: true, Server: []string{"unix:" + opts.NBD},
		})
	}
	abs, err := filepath.Abs(opts.Image)
	if err != nil {
		return err
	}
	return g.Add_drive(abs, &guestfs.OptargsAdd_drive{
		Readonly_is_set: true, Readonly: true,
		Format_is_set: true, Format: opts.Format,
	})
}

// boot launches the appliance, killed when ctx ends or, with deadline,
// after timeout. Until launch returns there is no pid to kill; the
// watcher then kills our qemu children directly.
func (s *Session) boot(ctx context.Context, timeout time.Duration, deadline bool) error {
	launchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if deadline {
		launchCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	s.stop = context.AfterFunc(launchCtx, s.kill)
	err := s.g.Launch()
	s.stop()
	if err != nil && ctx.Err() == nil && launchCtx.Err() != nil {
		err = fmt.Errorf("KVM launch did not finish within %s: %w", timeout, err)
	}
	return err
}

// Accelerator says what was requested and used.
func (s *Session) Accelerator() result.Accelerator { return s.accel }

// Close shuts the appliance down. It is safe to call twice.
func (s *Session) Close() error {
	if s.stop != nil {
		s.stop()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.g == nil {
		return nil
	}
	g := s.g
	s.g = nil
	if err := g.Close(); err != nil {
		return fmt.Errorf("close appliance: %s", err.Errmsg)
	}
	return nil
}

// kill ends qemu without taking the handle lock, so that a blocked call
// returns. It runs from the context watcher.
func (s *Session) kill() {
	if pid := int(s.pid.Load()); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		s.log.WithField("pid", pid).Warn("appliance killed: job context ended")
		return
	}
	for _, p := range qemuChildren() {
		_ = syscall.Kill(p, syscall.SIGKILL)
		s.log.WithField("pid", p).Warn("appliance killed during launch: job context ended")
	}
}

// call runs fn with the handle, serialised, and fails after Close.
func (s *Session) call(ctx context.Context, op string, fn func(g *guestfs.Guestfs) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.g == nil {
		return fmt.Errorf("%s: appliance closed", op)
	}
	// libguestfs keeps the error handler and the last error per OS thread;
	// the bindings read the error in a second cgo call, which must run on
	// the thread that failed.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	silence(s.g)
	err := fn(s.g)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, ctx.Err())
	}
	return err
}

// usesKVM reports whether process pid holds /dev/kvm open.
func usesKVM(pid int) bool {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && t == "/dev/kvm" {
			return true
		}
	}
	return false
}

// qemuChildren lists our child processes that run qemu.
func qemuChildren() []int {
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		comm := s[strings.IndexByte(s, '(')+1 : i]
		f := strings.Fields(s[i+1:])
		if len(f) < 2 || f[1] != strconv.Itoa(self) || !strings.HasPrefix(comm, "qemu") {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}
