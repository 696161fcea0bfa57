// Package oscaptest holds the test that holds our profile rules to
// OpenSCAP's verdicts (issue 14 point 3): a real Debian 12 root from
// debootstrap, with a few settings changed, is profiled by the engine
// (package profile, on the extracted tree through filesystem.Tree, the
// same guest.FS the image readers give) and by OpenSCAP 1.3.7 running the
// SCAP Security Guide's Debian 12 content offline on the same tree, and
// every rule both decide must agree, matched by the ComplianceAsCode id
// our rule cites, or be a known difference with its reason (allowed).
// A second tree with planted misconfigurations must fail on both sides.
//
// OpenSCAP runs inside the root (chroot, the root's own openscap-scanner,
// in a private mount namespace with the root bound on itself and /proc
// mounted). oscap-chroot, tried first, cannot read a Debian root's
// packages: its dpkginfo probe fails on the host's libapt state, so every
// rule of a package platform (sshd, sysctl, package, service rules) was
// notapplicable, and without the bind mount its file walks found no local
// filesystem. What it still cannot decide offline (blind): service rules,
// which ask a running systemd over D-Bus. What it decides from the wrong
// machine: the runtime half of its sysctl checks reads the test host's
// kernel; those verdicts are compared only when the host runs the value
// the image configures (hostKernel).
//
// Measured 2026-12-05 on the 2-core dev VM while a CI run was using it:
// install-openscap.sh cold 1m38s (ssg-debian fetch ~5 s, debootstrap of
// the 190-package root with openscap-scanner ~90 s); cached ~0 s. The
// test: ~22 s (two tar extractions 2-6 s each, our engine 0.5 s, oscap
// 3.8 s per tree, its file walks included).
//
// scripts/install-openscap.sh installs what it needs. It has no code of
// its own: the package exists for its test.
package oscaptest
