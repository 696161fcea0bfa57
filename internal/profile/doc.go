// Package profile evaluates security and compliance rules against the
// filesystem of a powered-off guest and reports per-rule results with
// evidence, per-profile scores, a hardening index, and JSON, SARIF 2.1.0
// and JUnit XML output.
//
// # Entry points
//
//	Evaluate(ctx, Target, Options) (*Report, error)
//	Rules() []Rule          // the registry, built fresh on each call
//	Profiles() []Profile    // profiles with their rule ids
//	WriteSARIF(w, *Report, toolVersion) error
//	WriteJUnit(w, *Report) error
//
// Rules read the guest only through guest.FS (via the parsers of package
// guestconf, which resolve symlinks inside the guest) and the target's
// package list. Parsing shared by many rules (sshd_config, sysctl, systemd
// units, the filesystem walk) happens once per Evaluate, in an Env.
//
// # Results
//
// Every rule ends in one status:
//
//   - pass: the guest is compliant; evidence says what was seen, including
//     "not set, secure default applies".
//   - fail: not compliant; evidence gives file, line and the value seen.
//   - notapplicable: the rule does not apply (another OS family, the
//     software is not installed); evidence says why.
//   - notchecked: the rule applies but could not be decided: a bound was
//     hit (file larger than guest.DefaultMaxFile, the walk's entry or time
//     bound), the package list is unknown, or the FS reports no owners.
//   - error: the guest could not be read or parsed.
//
// A rule never passes silently: a missing file whose default is insecure
// fails, a pass or fail without evidence is turned into error, and a rule
// that panics is reported as error.
//
// # Operating systems
//
// Every rule names the OS families it was written for
// (Applicability.Families, required by TestRegistryIntegrity): "linux"
// (any Linux distribution, also one of unknown family), a Linux family
// ("debian", "rhel", "suse", "alpine", "arch") or "windows". The guest's
// family comes from Target.OS (inspection gives Type and Distro
// "windows" for Windows roots), else /etc/os-release, else a Windows
// system hive. A Linux rule on a Windows guest is notapplicable with a
// note saying so, and the reverse; on a guest whose OS is unknown rules
// are notchecked. A selected profile none of whose rules applies has
// ProfileScore.Applicable 0 and a Note ("no rule of profile compliance
// applies to windows").
//
// The Windows rules (rules_win.go) read the SOFTWARE, SYSTEM (current
// control set) and SAM hives with package winreg and cite CIS Microsoft
// Windows Server 2022 v3.0.0 items (References.CISWindows); their
// evidence is the hive file, the key, the value and its data.
//
// # Profiles
//
//   - security (seed): sshd (all sshd_* rules, file_permissions_sshd_config),
//     accounts and passwords (no_empty_passwords_etc_shadow,
//     accounts_no_uid_except_zero, accounts_password_all_shadowed,
//     account_unique_id), permissions of passwd/group/shadow, world-writable
//     and SUID/SGID files, host_firewall_enabled, package signatures
//     (ensure_gpgcheck_*, apt_*), telnet/rsh servers, PAM nullok, and the
//     guestkit worker's CIS-SSH-001, CIS-SSH-002 and CIS-FW-001.
//   - compliance (seed): password ageing and umask (accounts_*_login_defs,
//     accounts_umask_*), PAM minlen and faillock, SELinux, AppArmor,
//     auditd, time synchronisation, AIDE, cron.allow, and the worker's
//     CIS-1.6.1.1 and CIS-5.4.1.1.
//   - hardening (seed): sysctl_*, core dumps, /tmp mount and options,
//     GRUB password and grub.cfg permissions, cramfs, crontab permissions,
//     sticky bits, unneeded services and packages, and the worker's
//     CIS-2.2.1 and CIS-1.1.3.
//   - cis-level1-server: every non-legacy rule citing a Level 1 - Server
//     item of CIS Debian 12 v1.1.0 (Ubuntu 24.04 numbers them alike) or
//     CIS RHEL 9 (derived from References.CISLevel).
//   - cis-level2-server: Level 1 and Level 2 - Server items, as OpenSCAP's
//     cis_level2_server extends cis_level1_server.
//   - pci-dss: every non-legacy rule with a PCI-DSS v4.0.1 reference, and
//     accounts_password_max_age_90_days (8.3.9), which is in no seed
//     profile: its 90 days contradicts CIS 5.4.1.1's 365.
//
// Citations follow ComplianceAsCode's control files (cis_debian12.yml,
// cis_ubuntu2404.yml, rhel9's cis_rhel9.yml); TestCISCitations checks
// every number, level and mapping against rows taken from them.
//
// Without Options.Profiles the three seed profiles run. Profiles() lists
// the exact rule ids of each profile. The legacy rules keep the ids of the
// earlier Rust worker (CIS-SSH-001 root login with a password, CIS-SSH-002
// password authentication, CIS-FW-001 firewall configured, CIS-1.6.1.1
// SELinux not disabled, CIS-5.4.1.1 PASS_MAX_DAYS <= 365, CIS-2.2.1
// telnet/rsh/rlogin/tftp/vsftpd not enabled, CIS-1.1.3 /tmp sticky) but are
// evaluated with the same parsers as the other rules; they overlap
// canonical rules on purpose, for users who filter on the old ids. Where an
// old id's CIS number no longer means that check, the title says which
// policy the rule checks and References cite nothing it contradicts (see
// rules_legacy.go).
//
// # Scores
//
// Only decided rules (pass or fail) count; notapplicable, notchecked and
// error never raise or lower a score, but are counted in Summary and in
// each ProfileScore's Counts (Applicable = Rules - Counts.NotApplicable).
//
//   - ProfileScore.PassRate = pass / (pass + fail) over the profile's
//     rules, in 0..1; null when the profile decided no rule.
//   - Report.HardeningIndex = round(100 * Σ weight(passed) / Σ weight(decided))
//     over all evaluated rules (each rule once), with weights critical 10,
//     high 5, medium 3, low 1, info 0; 0 when nothing was decided.
//   - Report.Noncompliant: some rule failed with severity at or above
//     Options.SeverityThreshold (default medium; "none" disables this), or
//     FailOnCritical is set and a critical rule failed. ProfileScore has
//     the same flag per profile. Runners map Noncompliant to exit code 2
//     (result.ExitNoncompliant).
//
// # Filesystem-wide rules
//
// file_permissions_unauthorized_world_writable,
// dir_perms_world_writable_sticky_bits and
// file_permissions_unauthorized_suid/_sgid share one walk of the guest,
// skipping /proc, /sys, /dev and /run, bounded by Options.WalkMaxEntries
// (500000) and Options.WalkTimeout (60s). Past a bound, or when a directory
// cannot be read, these rules are notchecked, never pass. A guest.FS that
// implements ModeWalker gets one bulk listing instead of one Lstat per
// entry. SUID/SGID ownership comes from dpkg file lists or the apk
// database; for rpm guests the database is not read and files are compared
// with StandardSetIDPaths, which the evidence says.
//
// # Outputs
//
// The Report's JSON is the primary output (snake_case, stable; schema name
// in Report.Schema). WriteSARIF and WriteJUnit document their mappings.
// Test trees that share content with disk-image tests live in
// testdata/trees (see the README there).
package profile
