package runner_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"guestkit.io/batch/internal/inspect"
)

// truthOS is the part of <image>.expected.json (written by
// scripts/testimages.sh from the variables that built the tree) that the
// sections read from the guest's files must reproduce.
type truthOS struct {
	Root      string `json:"root"`
	Hostname  string `json:"hostname"`
	MachineID string `json:"machine_id"`
	InitSys   string `json:"init_system"`
	Users     []struct {
		Name  string `json:"name"`
		UID   int64  `json:"uid"`
		Shell string `json:"shell"`
	} `json:"users"`
	Services struct {
		Enabled    []string `json:"enabled"`
		Masked     []string `json:"masked"`
		SysV       []string `json:"sysv_enabled"`
		OpenRCBoot []string `json:"openrc_boot"`
	} `json:"services"`
	Kernels []struct {
		Version string `json:"version"`
		Vmlinuz string `json:"vmlinuz"`
		Initrd  string `json:"initrd"`
	} `json:"kernels"`
	Network struct {
		Nameservers []string `json:"nameservers"`
		Search      []string `json:"search"`
	} `json:"network"`
	SSHD     []string                     `json:"sshd_effective"`
	SELinux  *struct{ Mode, Type string } `json:"selinux"`
	AppArmor bool                         `json:"apparmor"`
	Firewall *struct {
		Type    string `json:"type"`
		Enabled bool   `json:"enabled"`
	} `json:"firewall"`
	CloudInit bool `json:"cloud_init"`
}

func compareGroundTruth(t *testing.T, img testImage, rep *inspect.Report) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(img.Path), img.Name+".expected.json"))
	if err != nil {
		t.Fatalf("ground truth: %v", err)
	}
	var truth struct {
		OS []truthOS `json:"operating_systems"`
	}
	if err := json.Unmarshal(data, &truth); err != nil {
		t.Fatal(err)
	}
	byRoot := map[string]*inspect.OS{}
	for i := range rep.OperatingSystems {
		byRoot[rep.OperatingSystems[i].Root] = &rep.OperatingSystems[i]
	}
	for _, w := range truth.OS {
		g := byRoot[w.Root]
		if g == nil {
			t.Errorf("root %s missing", w.Root)
			continue
		}
		errf := func(format string, args ...any) { t.Errorf("root %s: "+format, append([]any{w.Root}, args...)...) }
		if w.MachineID != "" && g.MachineID != w.MachineID {
			errf("machine_id = %q, want %q", g.MachineID, w.MachineID)
		}
		// Users: a 2 GiB /etc/passwd is not read; the report says so.
		if img.Name == "bigpasswd" {
			if len(g.Users) != 0 || !hasProblem(rep, "users", "/etc/passwd") {
				errf("bigpasswd: users %d, problems %+v; want no users and a problem naming /etc/passwd", len(g.Users), rep.Problems)
			}
		} else {
			var gu, wu []string
			for _, u := range g.Users {
				gu = append(gu, u.Name+":"+itoa(u.UID)+":"+u.Shell)
			}
			for _, u := range w.Users {
				wu = append(wu, u.Name+":"+itoa(u.UID)+":"+u.Shell)
			}
			sort.Strings(gu)
			sort.Strings(wu)
			if !slices.Equal(gu, wu) {
				errf("users = %v, want %v", gu, wu)
			}
		}
		if g.Services == nil {
			errf("no services section")
		} else {
			if g.Services.InitSystem != w.InitSys {
				errf("init_system = %q, want %q", g.Services.InitSystem, w.InitSys)
			}
			enabled := map[string]bool{}
			for _, s := range g.Services.Enabled {
				enabled[s.Name] = true
			}
			for _, s := range append(append([]string{}, w.Services.Enabled...), w.Services.SysV...) {
				if strings.HasSuffix(s, ".target") {
					continue // targets are not services
				}
				if !enabled[s] {
					errf("service %s not reported enabled (got %v)", s, keys(enabled))
				}
			}
			for _, m := range w.Services.Masked {
				if !slices.Contains(g.Services.Masked, m) || enabled[m] {
					errf("masked %s: masked=%v enabled=%v", m, g.Services.Masked, enabled[m])
				}
			}
		}
		if len(w.Kernels) > 0 {
			if g.Kernels == nil || len(g.Kernels.Installed) != len(w.Kernels) {
				errf("kernels = %+v, want %d", g.Kernels, len(w.Kernels))
			} else {
				for i, k := range w.Kernels {
					gk := g.Kernels.Installed[i]
					if gk.Version != k.Version || gk.Path != k.Vmlinuz || gk.Initrd != k.Initrd || !gk.Modules {
						errf("kernel %+v, want %+v with modules", gk, k)
					}
				}
				if g.Kernels.Default != w.Kernels[0].Version {
					errf("default kernel %q, want %q", g.Kernels.Default, w.Kernels[0].Version)
				}
			}
		}
		if g.Network == nil || !slices.Equal(g.Network.Nameservers, w.Network.Nameservers) || !slices.Equal(g.Network.Search, w.Network.Search) {
			errf("network = %+v, want nameservers %v search %v", g.Network, w.Network.Nameservers, w.Network.Search)
		}
		sec := g.Security
		if sec == nil {
			errf("no security section")
			continue
		}
		if len(w.SSHD) > 0 {
			if sec.SSH == nil {
				errf("no sshd settings")
			} else {
				for _, kv := range w.SSHD {
					k, v, _ := strings.Cut(kv, " ")
					if got := sec.SSH.Settings[strings.ToLower(k)]; got != v {
						errf("sshd %s = %q, want %q", k, got, v)
					}
				}
			}
		}
		if w.SELinux != nil && (sec.SELinux == nil || sec.SELinux.Mode != w.SELinux.Mode || sec.SELinux.Type != w.SELinux.Type) {
			errf("selinux = %+v, want %+v", sec.SELinux, w.SELinux)
		}
		if w.AppArmor != (sec.AppArmor != nil && sec.AppArmor.Enabled) {
			errf("apparmor = %+v, want enabled=%v", sec.AppArmor, w.AppArmor)
		}
		if w.Firewall != nil && (sec.Firewall == nil || sec.Firewall.Kind != w.Firewall.Type || sec.Firewall.Enabled != w.Firewall.Enabled) {
			errf("firewall = %+v, want %+v", sec.Firewall, w.Firewall)
		}
		if w.CloudInit != (g.CloudInit != nil && g.CloudInit.Installed) {
			errf("cloud_init = %+v, want installed=%v", g.CloudInit, w.CloudInit)
		}
	}
}

func hasProblem(rep *inspect.Report, section, path string) bool {
	for _, p := range rep.Problems {
		if p.Section == section && p.Path == path {
			return true
		}
	}
	return false
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
