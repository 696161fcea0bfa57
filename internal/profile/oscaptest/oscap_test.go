package oscaptest

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"guestkit.io/batch/internal/profile"
	"guestkit.io/batch/internal/testenv"
)

const (
	standardProfile = "xccdf_org.ssgproject.content_profile_standard"
	rulePrefix      = "xccdf_org.ssgproject.content_rule_"
	valuePrefix     = "xccdf_org.ssgproject.content_value_"
	// peerProfile is the tailored profile oscap runs: the standard profile
	// plus every rule we cite that the Debian 12 content has.
	peerProfile = "xccdf_io.guestkit_profile_peer"
	// Where theirs puts oscap's inputs and output in the root.
	inRootDS, inRootTailoring, inRootResults = "tmp/ssg-debian12-ds.xml", "tmp/guestkit-tailoring.xml", "tmp/guestkit-results.xml"
)

// allowed are the known, deliberate differences: our rule id -> why our
// verdict differs from OpenSCAP's on the same tree. Every entry must still
// be a disagreement (a stale entry fails the test).
var allowed = map[string]string{
	// Set in /etc/ssh/sshd_config.d/50-hardening.conf, which Debian 12's
	// sshd_config Includes on its first line.
	"sshd_set_idle_timeout": sshdDropIn,
	// Not set anywhere: OpenSSH 9.2's compiled-in default is the wanted
	// value.
	"sshd_disable_host_auth":      sshdDefault,
	"sshd_disable_rhosts":         sshdDefault,
	"sshd_do_not_permit_user_env": sshdDefault,
	"sshd_set_loglevel_info":      sshdDefault,
	// Debian's /etc/pam.d/common-auth has "pam_unix.so nullok".
	"no_empty_passwords": "SSG 0.1.76's Debian 12 check reads /etc/pam.d/system-auth, a RHEL file Debian does not have, " +
		"so it passes whatever Debian's PAM says; CIS Debian/Ubuntu 5.3.3.4.1 (pam_unix does not include nullok) audits " +
		"/etc/pam.d/common-{auth,account,password,session,session-noninteractive}, and Debian's common-auth has nullok",
}

const (
	sshdDropIn = "sshd reads the drop-ins of /etc/ssh/sshd_config.d that Debian 12's sshd_config Includes first, and so " +
		"do we and CIS's audit (sshd -T); SSG 0.1.76's Debian check reads /etc/ssh/sshd_config alone"
	sshdDefault = "CIS accepts OpenSSH's compiled-in default (its audit reads `sshd -T`, which prints it) and we read the " +
		"installed version's defaults; SSG's check wants the line written in /etc/ssh/sshd_config"
)

// blind are SSG rules OpenSCAP 1.3.7 cannot decide on a chroot, whatever
// it reports: their verdicts are shown, never compared.
var blind = map[string]string{
	// systemdunitdependency asks a running systemd over D-Bus.
	"service_ufw_enabled":             systemdBlind,
	"service_chronyd_or_ntpd_enabled": systemdBlind,
	"service_auditd_enabled":          systemdBlind,
}

const systemdBlind = "OpenSCAP reads unit dependencies from a running systemd over D-Bus; an offline root has none, so it reports error"

// setValues tailor the SSG variables to the thresholds the CIS text our
// rules cite sets, so that a threshold choice is not counted as a
// disagreement about the check.
var setValues = map[string]string{}

// settings are the "few settings changed" on the debootstrap root, as an
// administrator would after installing: guest path -> content.
var settings = map[string]string{
	"etc/ssh/sshd_config.d/50-hardening.conf": "ClientAliveInterval 300\nClientAliveCountMax 0\n",
	"etc/sysctl.d/60-hardening.conf": "fs.protected_hardlinks = 1\nfs.protected_symlinks = 1\nfs.suid_dumpable = 0\n" +
		"kernel.randomize_va_space = 2\nnet.ipv4.ip_forward = 0\nnet.ipv4.conf.all.send_redirects = 0\n" +
		"net.ipv4.conf.default.send_redirects = 0\nnet.ipv4.conf.all.accept_redirects = 0\n",
}

// planted are the misconfigurations of the second tree, each with the
// rules of ours and of SSG's that must fail on it.
type plant struct {
	what   string
	apply  func(t *testing.T, root string)
	ours   []string // our rule ids
	theirs []string // SSG rule ids
}

var plants = []plant{
	{
		what: "sshd permits root login (PermitRootLogin yes on sshd_config's first line, before the base tree's no)",
		apply: func(t *testing.T, root string) {
			prepend(t, root, sshdConfig, "PermitRootLogin yes\n")
		},
		ours:   []string{"sshd_disable_root_login"},
		theirs: []string{"sshd_disable_root_login"},
	},
	{
		what: "IP forwarding on (net.ipv4.ip_forward = 1 in /etc/sysctl.d, read after 60-hardening.conf)",
		apply: func(t *testing.T, root string) {
			write(t, root, "etc/sysctl.d/99-planted.conf", "net.ipv4.ip_forward = 1\n", 0o644)
		},
		ours:   []string{"sysctl_net_ipv4_ip_forward"},
		theirs: []string{"sysctl_net_ipv4_ip_forward"},
	},
	{
		what: "a world-writable file in /etc/profile.d",
		apply: func(t *testing.T, root string) {
			write(t, root, "etc/profile.d/planted.sh", "export PLANTED=1\n", 0o666)
		},
		ours:   []string{"file_permissions_unauthorized_world_writable"},
		theirs: []string{"file_permissions_unauthorized_world_writable"},
	},
	{
		what: "no firewall: ufw disabled (ENABLED=no) and its unit not enabled",
		apply: func(t *testing.T, root string) {
			write(t, root, "etc/ufw/ufw.conf", "ENABLED=no\nLOGLEVEL=low\n", 0o644)
			_ = os.Remove(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/ufw.service"))
		},
		ours:   []string{"host_firewall_enabled"},
		theirs: []string{"service_ufw_enabled"},
	},
}

func write(t *testing.T, root, name, data string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode passes through the umask
		t.Fatal(err)
	}
}

const sshdConfig = "etc/ssh/sshd_config"

// sshdMain is what the base tree adds to the end of sshd_config itself,
// the one file SSG's Debian checks read.
const sshdMain = "PermitRootLogin no\nPermitEmptyPasswords no\n"

func prepend(t *testing.T, root, name, data string) {
	t.Helper()
	old, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	write(t, root, name, data+string(old), 0o644)
}

// peer is what scripts/install-openscap.sh installed.
type peer struct {
	ds, rootTar string
}

func needPeer(t *testing.T) peer {
	t.Helper()
	if testing.Short() {
		t.Skip("OpenSCAP comparison: not under -short")
	}
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "oscaptest: needs root (tar --numeric-owner, unshare, mount, chroot)")
	}
	for _, tool := range []string{"unshare", "chroot", "mount", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Unavailable(t, "oscaptest: %v", err)
		}
	}
	pd, err := testenv.ScriptPath("install-openscap.sh")
	if err != nil {
		t.Fatal(err)
	}
	p := peer{ds: filepath.Join(pd, "ssg-debian12-ds.xml"), rootTar: filepath.Join(pd, "debian12-root.tar")}
	for _, f := range []string{p.ds, p.rootTar} {
		if _, err := os.Stat(f); err != nil {
			testenv.Unavailable(t, "oscaptest: %v: run `bash scripts/install-openscap.sh` once", err)
		}
	}
	return p
}

// extract unpacks the root tarball into a new directory with the
// settings applied.
func extract(t *testing.T, p peer) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("tar", "--numeric-owner", "--xattrs", "-xpf", p.rootTar, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	for name, data := range settings {
		write(t, dir, name, data, 0o644)
	}
	main, err := os.ReadFile(filepath.Join(dir, sshdConfig))
	if err != nil {
		t.Fatal(err)
	}
	write(t, dir, sshdConfig, string(main)+sshdMain, 0o644)
	// ufw: enabled at boot (its unit is enabled by the package) and on
	write(t, dir, "etc/ufw/ufw.conf", "ENABLED=yes\nLOGLEVEL=low\n", 0o644)
	return dir
}

// ours evaluates every profile's rules on the tree in dir.
func ours(t *testing.T, dir string) map[string]profile.RuleResult {
	t.Helper()
	fsys, done, err := dirFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	var all []string
	for _, p := range profile.Profiles() {
		all = append(all, p.Name)
	}
	rep, err := profile.Evaluate(context.Background(), profile.Target{FS: fsys}, profile.Options{Profiles: all})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OS.Family != "debian" || rep.OS.Version != "12" {
		t.Fatalf("os = %+v, want debian 12", rep.OS)
	}
	out := map[string]profile.RuleResult{}
	for _, r := range rep.Results {
		out[r.ID] = r
	}
	return out
}

var benchRe = regexp.MustCompile(`<(/?)xccdf-1\.2:(Group|Rule)\b([^>]*)>`)
var idRe = regexp.MustCompile(`\bid="([^"]+)"`)

// contentRules maps each rule id of the datastream to its ancestor
// groups: the standard profile deselects most groups, and XCCDF evaluates
// a rule only when every group above it is selected too.
func contentRules(t *testing.T, ds string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(ds)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	var groups []string
	for _, m := range benchRe.FindAllSubmatch(data, -1) {
		closing, kind, attrs := len(m[1]) > 0, string(m[2]), m[3]
		switch {
		case kind == "Group" && closing:
			if len(groups) > 0 {
				groups = groups[:len(groups)-1]
			}
		case kind == "Group" && !bytes.HasSuffix(attrs, []byte("/")):
			id := idRe.FindSubmatch(attrs)
			if id == nil {
				t.Fatalf("%s: a Group without id", ds)
			}
			groups = append(groups, string(id[1]))
		case kind == "Rule" && !closing:
			if id := idRe.FindSubmatch(attrs); id != nil {
				if r, ok := strings.CutPrefix(string(id[1]), rulePrefix); ok {
					out[r] = append([]string{}, groups...)
				}
			}
		}
	}
	if len(out) < 100 {
		t.Fatalf("%s: %d rules, not an SSG datastream", ds, len(out))
	}
	return out
}

// tailoring writes the peer profile: standard + the given SSG rules.
func tailoring(t *testing.T, ds string, content map[string][]string, rules []string) string {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>
<xccdf-1.2:Tailoring xmlns:xccdf-1.2="http://checklists.nist.gov/xccdf/1.2" id="xccdf_io.guestkit_tailoring_peer">
<xccdf-1.2:benchmark href="%s"/>
<xccdf-1.2:version time="2026-12-05T00:00:00">1</xccdf-1.2:version>
<xccdf-1.2:Profile id="%s" extends="%s">
<xccdf-1.2:title>SSG standard plus every rule guestkit cites</xccdf-1.2:title>
`, "/"+inRootDS, peerProfile, standardProfile)
	var groups []string
	for _, r := range rules {
		groups = append(groups, content[r]...)
	}
	slices.Sort(groups)
	for _, g := range slices.Compact(groups) {
		fmt.Fprintf(&b, "<xccdf-1.2:select idref=\"%s\" selected=\"true\"/>\n", g)
	}
	for _, r := range rules {
		fmt.Fprintf(&b, "<xccdf-1.2:select idref=\"%s%s\" selected=\"true\"/>\n", rulePrefix, r)
	}
	keys := slices.Sorted(mapsKeys(setValues))
	for _, k := range keys {
		fmt.Fprintf(&b, "<xccdf-1.2:set-value idref=\"%s%s\">%s</xccdf-1.2:set-value>\n", valuePrefix, k, setValues[k])
	}
	b.WriteString("</xccdf-1.2:Profile>\n</xccdf-1.2:Tailoring>\n")
	p := filepath.Join(t.TempDir(), "tailoring.xml")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// theirs runs OpenSCAP on dir and returns SSG rule id -> result. oscap
// runs inside the root, from the root's own openscap-scanner: oscap-chroot
// (the host's oscap with OSCAP_PROBE_ROOT, tried first) cannot read a Debian root's
// packages, its dpkginfo probe failing on the host's libapt state, which
// makes every rule whose platform is a package notapplicable. In a
// private mount namespace that ends with the command, the root is bound
// on itself, so that its file walks (recurse_file_system="defined", the
// local mount points of /proc/self/mounts) see "/" as a local mount, and
// /proc is mounted.
func theirs(t *testing.T, dir, ds, tailor string) map[string]string {
	t.Helper()
	for src, dst := range map[string]string{ds: inRootDS, tailor: inRootTailoring} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		write(t, dir, dst, string(data), 0o644)
	}
	res := filepath.Join(dir, inRootResults)
	defer func() {
		for _, f := range []string{inRootDS, inRootTailoring, inRootResults} {
			_ = os.Remove(filepath.Join(dir, f))
		}
	}()
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "sh", "-ec",
		`mount --bind "$1" "$1"; mount -t proc proc "$1/proc"; exec chroot "$1" oscap xccdf eval --profile "$2" --tailoring-file "/$3" --results "/$4" "/$5"`,
		"sh", dir, peerProfile, inRootTailoring, inRootResults, inRootDS)
	out, err := cmd.CombinedOutput()
	// 2: some rule failed; anything else but 0 is oscap's own error.
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 2) {
		t.Fatalf("oscap in the root: %v\n%s", err, out)
	}
	data, err := os.ReadFile(res)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Results []struct {
			IDRef  string `xml:"idref,attr"`
			Result string `xml:"result"`
		} `xml:"TestResult>rule-result"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", res, err)
	}
	m := map[string]string{}
	for _, r := range doc.Results {
		if id, ok := strings.CutPrefix(r.IDRef, rulePrefix); ok {
			m[id] = r.Result
		}
	}
	if len(m) == 0 {
		t.Fatalf("oscap: no rule results in %s\n%s", res, out)
	}
	return m
}

func decided(s string) bool { return s == "pass" || s == "fail" }

// row is one of our rules beside OpenSCAP's verdict on its CaC id.
type row struct {
	rule, cac, ours, theirs, note string
}

func compare(ourRes map[string]profile.RuleResult, their map[string]string, content map[string][]string) (rows []row, bad []string) {
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range ourRes {
			if !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		r := ourRes[id]
		cac := r.References.ComplianceAsCode
		if cac == "" {
			continue
		}
		w := row{rule: id, cac: cac, ours: string(r.Status), theirs: their[cac]}
		switch {
		case content[cac] == nil:
			w.theirs, w.note = "-", "no Debian 12 content for this id"
		case w.theirs == "":
			w.theirs, w.note = "-", "not in the results"
		case blind[cac] != "" && decided(w.theirs):
			w.note = "decided, though listed blind"
			bad = append(bad, fmt.Sprintf("%s (%s): OpenSCAP %s, but blind lists it as undecidable offline (%s): drop the entry", id, cac, w.theirs, blind[cac]))
		case blind[cac] != "":
			w.note = "OpenSCAP blind offline: " + blind[cac]
		case decided(w.ours) && decided(w.theirs):
			why, ok := allowed[id]
			switch {
			case w.ours == w.theirs && ok:
				bad = append(bad, fmt.Sprintf("%s (%s): both %s, but allowed lists it as a difference (%s): drop the entry", id, cac, w.ours, why))
				w.note = "agree (stale allow-list entry)"
			case w.ours == w.theirs:
				w.note = "agree"
			case hostKernel(cac, r) != "":
				w.note = "host kernel: " + hostKernel(cac, r)
			case ok:
				w.note = "allowed: " + why
			default:
				w.note = "DISAGREE"
				bad = append(bad, fmt.Sprintf("%s (%s): guestkit %s, OpenSCAP %s\n  evidence: %s", id, cac, w.ours, w.theirs, evidence(r)))
			}
		case decided(w.ours):
			w.note = "only guestkit decides"
		case decided(w.theirs):
			w.note = "only OpenSCAP decides"
		default:
			w.note = "neither decides"
		}
		rows = append(rows, w)
	}
	return rows, bad
}

// hostKernel says why OpenSCAP's verdict on a sysctl rule measures the
// test host rather than the image: SSG's sysctl checks read the files and
// the running kernel, and the kernel oscap sees in the root is the host's.
// Empty when the host runs the value the image configures, so that the
// verdict is about the files alone.
func hostKernel(cac string, r profile.RuleResult) string {
	if !strings.HasPrefix(cac, "sysctl_") {
		return ""
	}
	for _, e := range r.Evidence {
		key, val, ok := strings.Cut(e.Value, " = ")
		if !ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/")))
		if err != nil {
			return fmt.Sprintf("the test host has no %s (%v)", key, err)
		}
		if h := strings.Join(strings.Fields(string(data)), " "); h != strings.Join(strings.Fields(val), " ") {
			return fmt.Sprintf("OpenSCAP also reads the running kernel, the test host's: %s = %s there, %s in the image", key, h, val)
		}
		return ""
	}
	return ""
}

func evidence(r profile.RuleResult) string {
	var parts []string
	for _, e := range r.Evidence {
		s := strings.TrimSpace(strings.Join(slices.DeleteFunc([]string{e.File, e.Value, e.Note}, func(s string) bool { return s == "" }), " "))
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func table(rows []row, their map[string]string, cited map[string]bool) string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "RULE\tCAC ID\tGUESTKIT\tOPENSCAP\tNOTE")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.rule, r.cac, r.ours, r.theirs, r.note)
	}
	var extra []string
	for id := range their {
		if !cited[id] && their[id] != "notselected" {
			extra = append(extra, id)
		}
	}
	sort.Strings(extra)
	for _, id := range extra {
		fmt.Fprintf(w, "-\t%s\t-\t%s\tstandard profile, no guestkit rule cites it\n", id, their[id])
	}
	w.Flush()
	return b.String()
}

func summary(rows []row) string {
	var both, agree, allow, host int
	for _, r := range rows {
		if decided(r.ours) && decided(r.theirs) && !strings.HasPrefix(r.note, "OpenSCAP blind") {
			both++
			switch {
			case r.ours == r.theirs:
				agree++
			case strings.HasPrefix(r.note, "allowed"):
				allow++
			case strings.HasPrefix(r.note, "host kernel"):
				host++
			}
		}
	}
	return fmt.Sprintf("both decided %d, agreed %d, allowed differences %d, decided by the test host's kernel %d, other disagreements %d",
		both, agree, allow, host, both-agree-allow-host)
}

// TestAgreesWithOpenSCAP profiles a real Debian 12 root (debootstrap, a
// few settings changed) with every rule and with OpenSCAP's SSG standard
// profile plus every SSG rule we cite, offline on the same tree, and
// compares the verdicts of every rule both decide.
func TestAgreesWithOpenSCAP(t *testing.T) {
	p := needPeer(t)
	content := contentRules(t, p.ds)
	t0 := time.Now()
	base := extract(t, p)
	t.Logf("extract: %v", time.Since(t0).Round(time.Millisecond))

	t0 = time.Now()
	ourRes := ours(t, base)
	t.Logf("guestkit: %d rules in %v", len(ourRes), time.Since(t0).Round(time.Millisecond))

	cited := map[string]bool{}
	for _, r := range ourRes {
		if c := r.References.ComplianceAsCode; content[c] != nil {
			cited[c] = true
		}
	}
	for _, pl := range plants {
		for _, id := range pl.theirs {
			if content[id] != nil {
				cited[id] = true
			}
		}
	}
	tailor := tailoring(t, p.ds, content, slices.Sorted(func(yield func(string) bool) {
		for c := range cited {
			if !yield(c) {
				return
			}
		}
	}))
	t0 = time.Now()
	their := theirs(t, base, p.ds, tailor)
	t.Logf("oscap in the root: %d rule results in %v", len(their), time.Since(t0).Round(time.Millisecond))

	rows, bad := compare(ourRes, their, content)
	t.Logf("agreement (%s):\n%s", summary(rows), table(rows, their, cited))
	for _, b := range bad {
		t.Error(b)
	}
	for id := range allowed {
		if _, ok := ourRes[id]; !ok {
			t.Errorf("allowed: %s is no rule of ours", id)
		}
	}

	t.Run("planted", func(t *testing.T) {
		dir := extract(t, p)
		for _, pl := range plants {
			pl.apply(t, dir)
		}
		ourP := ours(t, dir)
		theirP := theirs(t, dir, p.ds, tailor)
		for _, pl := range plants {
			for _, id := range pl.ours {
				if ourP[id].Status != profile.StatusFail {
					t.Errorf("%s: guestkit %s = %s, want fail\n  evidence: %s", pl.what, id, ourP[id].Status, evidence(ourP[id]))
				}
				if base := ourRes[id].Status; base != profile.StatusPass {
					t.Errorf("%s: guestkit %s = %s on the unplanted tree, want pass", pl.what, id, base)
				}
			}
			for _, id := range pl.theirs {
				if why := blind[id]; why != "" || !decided(theirP[id]) {
					t.Logf("%s: OpenSCAP cannot decide %s offline (%s on the planted tree, %s on the base): %s", pl.what, id, theirP[id], their[id], why)
					continue
				}
				if theirP[id] != "fail" {
					t.Errorf("%s: OpenSCAP %s = %q, want fail", pl.what, id, theirP[id])
				}
				if their[id] != "pass" {
					if why := hostKernel(id, ourRes[pl.ours[0]]); why != "" {
						t.Logf("%s: OpenSCAP %s = %q on the unplanted tree: %s", pl.what, id, their[id], why)
						continue
					}
					t.Errorf("%s: OpenSCAP %s = %q on the unplanted tree, want pass", pl.what, id, their[id])
				}
			}
		}
		rows, bad := compare(ourP, theirP, content)
		t.Logf("planted tree (%s)", summary(rows))
		for _, b := range bad {
			t.Error(b)
		}
	})
}
