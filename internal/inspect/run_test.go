package inspect

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"guestkit.io/batch/internal/guest"
)

// fakeBackend serves fstest trees as mounted roots and records the calls,
// so that tests see what Run asks of a backend and in which order.
type fakeBackend struct {
	roots      []string
	rootsErr   error
	os         map[string]OS
	osErr      map[string]error
	trees      map[string]fstest.MapFS
	mountProbs map[string][]Problem
	mountErr   map[string]error
	apps       map[string][]Application
	appsErr    map[string]error
	storage    Storage
	storageErr error
	unmountErr error
	// cancelAt cancels the test's context when this call is made.
	cancelAt string
	cancel   context.CancelFunc

	mounted string
	known   []Filesystem
	calls   []string
}

func (f *fakeBackend) call(ctx context.Context, name string) error {
	f.calls = append(f.calls, name)
	if name == f.cancelAt && f.cancel != nil {
		f.cancel()
	}
	return ctx.Err()
}

func (f *fakeBackend) Roots(ctx context.Context) ([]string, error) {
	if err := f.call(ctx, "roots"); err != nil {
		return nil, err
	}
	return f.roots, f.rootsErr
}

func (f *fakeBackend) OSFacts(ctx context.Context, root string) (OS, error) {
	if err := f.call(ctx, "os "+root); err != nil {
		return OS{}, err
	}
	return f.os[root], f.osErr[root]
}

func (f *fakeBackend) Mount(ctx context.Context, root string) (guest.FS, []Problem, error) {
	if err := f.call(ctx, "mount "+root); err != nil {
		return nil, nil, err
	}
	if f.mounted != "" {
		return nil, nil, errors.New("already mounted: " + f.mounted)
	}
	f.mounted = root
	if err := f.mountErr[root]; err != nil {
		return nil, f.mountProbs[root], err
	}
	return f.trees[root], f.mountProbs[root], nil
}

func (f *fakeBackend) Applications(ctx context.Context, root string) ([]Application, error) {
	if err := f.call(ctx, "apps "+root); err != nil {
		return nil, err
	}
	if f.mounted != root {
		return nil, errors.New("not mounted")
	}
	return f.apps[root], f.appsErr[root]
}

func (f *fakeBackend) Unmount(ctx context.Context) error {
	f.calls = append(f.calls, "unmount")
	f.mounted = ""
	return f.unmountErr
}

func (f *fakeBackend) Storage(ctx context.Context, known []Filesystem) (Storage, []Problem, error) {
	if err := f.call(ctx, "storage"); err != nil {
		return Storage{}, nil, err
	}
	f.known = known
	return f.storage, []Problem{{Section: "partitions", Path: "/dev/sda", Message: "odd table"}}, f.storageErr
}

func twoRootBackend() *fakeBackend {
	debian := fstest.MapFS{
		"etc/passwd": file("root:x:0:0:root:/root:/bin/bash\n"),
		"etc/shadow": file("root:!:1::::::\n"),
		"etc/group":  file("root:x:0:\n"),
		"etc/hosts":  file("127.0.0.1 localhost\n"),
	}
	other := fstest.MapFS{"etc/passwd": file("admin:x:1000:1000::/home/admin:/bin/sh\n"), "etc/shadow": file("admin:$6$x$y:1::::::\n")}
	return &fakeBackend{
		roots: []string{"/dev/sda1", "/dev/sdb1"},
		os: map[string]OS{
			"/dev/sda1": {Root: "/dev/sda1", Type: "linux", Distro: "debian", Filesystems: []Filesystem{{Device: "/dev/sda1", Type: "ext4"}}},
			"/dev/sdb1": {Root: "/dev/sdb1", Type: "linux", Distro: "rhel"},
		},
		trees: map[string]fstest.MapFS{"/dev/sda1": debian, "/dev/sdb1": other},
		mountProbs: map[string][]Problem{
			"/dev/sdb1": {{Section: "mount", Path: "/home", Message: "mount /dev/sdb2: wrong fs type"}},
		},
		apps:    map[string][]Application{"/dev/sdb1": {{Name: "bash", Version: "5.1"}}},
		appsErr: map[string]error{"/dev/sda1": errors.New("rpmdb: unreadable")},
		storage: Storage{Devices: []Device{{Name: "/dev/sda", Size: 1 << 30}}},
	}
}

func TestRunTwoRoots(t *testing.T) {
	b := twoRootBackend()
	var visited []string
	phases := map[string]int{}
	opts := Options{Observe: func(p string, d time.Duration) { phases[p]++ }}
	rep, err := Run(context.Background(), b, opts, func(ctx context.Context, os *OS, fsys guest.FS) error {
		if b.mounted != os.Root {
			t.Errorf("visit of %s while %q is mounted", os.Root, b.mounted)
		}
		if fsys == nil || len(os.Users) == 0 {
			t.Errorf("visit of %s before the sections: %s", os.Root, asJSON(os))
		}
		visited = append(visited, os.Root)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(visited, []string{"/dev/sda1", "/dev/sdb1"}) {
		t.Errorf("visited %v", visited)
	}
	wantCalls := []string{"roots", "os /dev/sda1", "mount /dev/sda1", "apps /dev/sda1", "unmount",
		"os /dev/sdb1", "mount /dev/sdb1", "apps /dev/sdb1", "unmount", "storage"}
	if !slices.Equal(b.calls, wantCalls) {
		t.Errorf("calls = %v\nwant %v", b.calls, wantCalls)
	}
	if len(b.known) != 1 || b.known[0].Device != "/dev/sda1" {
		t.Errorf("storage was told %v", b.known)
	}
	if len(rep.OperatingSystems) != 2 {
		t.Fatalf("roots = %s", asJSON(rep.OperatingSystems))
	}
	a, c := rep.OperatingSystems[0], rep.OperatingSystems[1]
	if a.Distro != "debian" || len(a.Users) != 1 || a.Users[0].Name != "root" || a.Network == nil || a.Applications == nil || len(a.Applications) != 0 {
		t.Errorf("root 1 = %s", asJSON(a))
	}
	if c.Distro != "rhel" || len(c.Users) != 1 || !c.Users[0].CanLogin || len(c.Applications) != 1 {
		t.Errorf("root 2 = %s", asJSON(c))
	}
	if len(rep.Storage.Devices) != 1 {
		t.Errorf("storage = %s", asJSON(rep.Storage))
	}
	want := []Problem{
		{Root: "/dev/sda1", Section: "applications", Message: "rpmdb: unreadable"},
		{Root: "/dev/sdb1", Section: "mount", Path: "/home", Message: "mount /dev/sdb2: wrong fs type"},
		{Section: "partitions", Path: "/dev/sda", Message: "odd table"},
	}
	if !slices.Equal(rep.Problems, want) {
		t.Errorf("problems:\n got %s\nwant %s", asJSON(rep.Problems), asJSON(want))
	}
	for _, p := range []string{"inspect_os", "os_facts", "mount", "applications", "sections", "visit", "storage"} {
		if phases[p] == 0 {
			t.Errorf("phase %s not observed: %v", p, phases)
		}
	}
	// Arrays are [] in JSON, never null, even when the backend says nil.
	js, _ := json.Marshal(c)
	for _, k := range []string{`"mountpoints":[]`, `"filesystems":[]`} {
		if !strings.Contains(string(js), k) {
			t.Errorf("JSON lacks %s: %s", k, js)
		}
	}
}

func TestRunNoOS(t *testing.T) {
	b := &fakeBackend{storage: Storage{Devices: []Device{{Name: "/dev/sda", Size: 42}}}}
	rep, err := Run(context.Background(), b, Options{}, func(context.Context, *OS, guest.FS) error {
		t.Error("visit without a root")
		return nil
	})
	if !errors.Is(err, ErrNoOS) {
		t.Fatalf("err = %v, want ErrNoOS", err)
	}
	if rep == nil || rep.OperatingSystems == nil || len(rep.OperatingSystems) != 0 || len(rep.Storage.Devices) != 1 || rep.Storage.Devices[0].Size != 42 || len(rep.Problems) != 1 {
		t.Errorf("report = %s", asJSON(rep))
	}
}

func TestRunFailures(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name    string
		setup   func(b *fakeBackend)
		visit   VisitFunc
		err     error  // errors.Is target; nil: Run succeeds
		errText string // substring of the error
		roots   int    // roots in the report
		problem Problem
		calls   []string // calls that must have been made, in order
	}{
		{
			name: "mount error is a problem; the other root is still inspected and unmount runs",
			setup: func(b *fakeBackend) {
				b.mountErr = map[string]error{"/dev/sda1": errors.New("mount /dev/sda1 on /: bad superblock")}
			},
			roots: 2, problem: Problem{Root: "/dev/sda1", Section: "mount", Path: "/", Message: "mount /dev/sda1 on /: bad superblock"},
			calls: []string{"mount /dev/sda1", "unmount", "os /dev/sdb1", "mount /dev/sdb1"},
		},
		{
			name:  "unmount error is a problem",
			setup: func(b *fakeBackend) { b.unmountErr = errors.New("busy") },
			roots: 2, problem: Problem{Root: "/dev/sdb1", Section: "unmount", Message: "busy"},
		},
		{
			name:  "roots error",
			setup: func(b *fakeBackend) { b.rootsErr = boom },
			err:   boom, errText: "inspect: boom",
		},
		{
			name:  "os facts error ends the run",
			setup: func(b *fakeBackend) { b.osErr = map[string]error{"/dev/sdb1": boom} },
			err:   boom, errText: "inspect root /dev/sdb1", roots: 1,
		},
		{
			name:  "storage error ends the run with the roots kept",
			setup: func(b *fakeBackend) { b.storageErr = boom },
			err:   boom, errText: "storage: boom", roots: 2,
		},
		{
			name:  "visit error",
			visit: func(ctx context.Context, os *OS, _ guest.FS) error { return boom },
			err:   boom, errText: "root /dev/sda1: boom",
			calls: []string{"mount /dev/sda1", "apps /dev/sda1", "unmount"},
		},
		{
			name:  "cancelled during applications",
			setup: func(b *fakeBackend) { b.cancelAt = "apps /dev/sda1" },
			visit: func(context.Context, *OS, guest.FS) error { panic("visit after cancel") },
			err:   context.Canceled,
			calls: []string{"mount /dev/sda1", "apps /dev/sda1", "unmount"},
		},
		{
			name: "cancelled while mounting",
			setup: func(b *fakeBackend) {
				b.cancelAt = "mount /dev/sdb1"
				b.mountErr = map[string]error{"/dev/sdb1": context.Canceled}
			},
			err: context.Canceled, roots: 1,
		},
		{
			name:  "cancelled before a root",
			setup: func(b *fakeBackend) { b.cancelAt = "roots" },
			err:   context.Canceled,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b := twoRootBackend()
			b.cancel = cancel
			if c.setup != nil {
				c.setup(b)
			}
			rep, err := Run(ctx, b, Options{}, c.visit)
			if c.err == nil && err != nil || c.err != nil && !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if c.errText != "" && !strings.Contains(err.Error(), c.errText) {
				t.Errorf("err = %q, want it to say %q", err, c.errText)
			}
			if rep == nil {
				t.Fatal("no report")
			}
			if len(rep.OperatingSystems) != c.roots {
				t.Errorf("%d roots reported, want %d", len(rep.OperatingSystems), c.roots)
			}
			if c.problem.Section != "" && !slices.Contains(rep.Problems, c.problem) {
				t.Errorf("problems = %s, want %+v", asJSON(rep.Problems), c.problem)
			}
			if c.calls != nil && !isSubsequence(b.calls, c.calls) {
				t.Errorf("calls = %v, want in order %v", b.calls, c.calls)
			}
			if b.mounted != "" {
				t.Errorf("%s left mounted", b.mounted)
			}
		})
	}
}

func TestRunMountFailedRootHasIdentityOnly(t *testing.T) {
	b := twoRootBackend()
	b.mountErr = map[string]error{"/dev/sda1": errors.New("no")}
	visited := 0
	rep, err := Run(context.Background(), b, Options{}, func(context.Context, *OS, guest.FS) error { visited++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	os := rep.OperatingSystems[0]
	if os.Distro != "debian" || os.Users != nil || os.Applications == nil || len(os.Applications) != 0 || visited != 1 {
		t.Errorf("root = %s, visited %d", asJSON(os), visited)
	}
}

func TestRunWindowsSkipsFileSections(t *testing.T) {
	b := twoRootBackend()
	b.roots = []string{"/dev/sda2"}
	b.os = map[string]OS{"/dev/sda2": {Root: "/dev/sda2", Type: "windows", WindowsSystemroot: "/Windows"}}
	// A Linux-looking file on a Windows root is not read.
	b.trees = map[string]fstest.MapFS{"/dev/sda2": {"etc/passwd": file("root:x:0:0::/root:/bin/sh\n"), "Windows/System32/config/SYSTEM": file("")}}
	b.apps = map[string][]Application{"/dev/sda2": {{Name: "Mozilla Firefox", Version: "120.0"}}}
	visited := 0
	rep, err := Run(context.Background(), b, Options{}, func(ctx context.Context, os *OS, fsys guest.FS) error {
		visited++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	os := rep.OperatingSystems[0]
	if os.Users != nil || os.Services != nil || os.Kernels != nil || os.Network != nil || os.Security != nil || os.Fstab != nil || len(os.Applications) != 1 || visited != 1 {
		t.Errorf("windows root = %s, visited %d", asJSON(os), visited)
	}
}

func TestRunSkipOptions(t *testing.T) {
	b := twoRootBackend()
	rep, err := Run(context.Background(), b, Options{SkipApplications: true, SkipUsers: true, SkipNetwork: true, SkipServices: true, SkipSecurity: true, SkipStorage: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, os := range rep.OperatingSystems {
		if os.Users != nil || os.Groups != nil || os.Network != nil || os.Services != nil || os.Security != nil || os.Fstab != nil || os.Applications == nil || len(os.Applications) != 0 {
			t.Errorf("root = %s", asJSON(os))
		}
	}
	if slices.Contains(b.calls, "apps /dev/sda1") {
		t.Errorf("applications listed although skipped: %v", b.calls)
	}
}

// isSubsequence reports whether want appears in got in order.
func isSubsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
