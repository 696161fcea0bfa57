package sbom

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	spdxjson "github.com/spdx/tools-golang/json"

	"guestkit.io/batch/internal/inspect"
)

func debianRoot() inspect.OS {
	return inspect.OS{
		Root: "/dev/sda1", Type: "linux", Distro: "debian", ProductName: "Debian GNU/Linux 12 (bookworm)",
		MajorVersion: 12, MinorVersion: 5, Arch: "x86_64", PackageFormat: "deb", Hostname: "deb12",
		Applications: []inspect.Application{
			{Name: "openssh-server", Epoch: 1, Version: "9.2p1", Release: "2+deb12u3", Arch: "amd64", SourcePackage: "openssh", URL: "https://www.openssh.com/", Summary: "secure shell (SSH) server"},
			{Name: "bash", Version: "5.2.15", Release: "2+b2", Arch: "amd64"},
			{Name: "base-files", Version: "12.4+deb12u5", Arch: "amd64"},
			{Name: "bash", Version: "5.2.15", Release: "2+b2", Arch: "amd64"}, // listed twice: one component
		},
	}
}

func rockyRoot() inspect.OS {
	return inspect.OS{
		Root: "/dev/sda1", Type: "linux", Distro: "rocky", MajorVersion: 9, MinorVersion: 4, Arch: "x86_64", PackageFormat: "rpm",
		Applications: []inspect.Application{
			{Name: "NetworkManager", Epoch: 1, Version: "1.46.0", Release: "8.el9_4", Arch: "x86_64"},
			{Name: "bash", Version: "5.1.8", Release: "9.el9", Arch: "x86_64"},
			{Name: "gpg-pubkey", Version: "350d275d", Release: "6395c50d"},
		},
	}
}

func alpineRoot(dev string) inspect.OS {
	return inspect.OS{
		Root: dev, Type: "linux", Distro: "alpinelinux", MajorVersion: 3, MinorVersion: 19, Arch: "x86_64", PackageFormat: "apk",
		Applications: []inspect.Application{
			// libguestfs drops the r of -r15.
			{Name: "busybox", Version: "1.36.1", Release: "15", Arch: "x86_64"},
			{Name: "ca-certificates-bundle", Version: "20240226", Release: "0", Arch: "x86_64"},
		},
	}
}

var testOpts = Options{
	Subject: Subject{Name: "images/web-01.qcow2", SHA256: strings.Repeat("ab", 32), JobID: "sweep-web-01"},
	Tool:    Tool{Name: "guestkit-runner", Version: "1.2.3"},
	Created: time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC),
}

func TestPURL(t *testing.T) {
	deb, rpm, apk := debianRoot(), rockyRoot(), alpineRoot("/dev/sda")
	rhel := inspect.OS{Distro: "rhel", MajorVersion: 9, MinorVersion: 4, PackageFormat: "rpm"}
	ubuntu := inspect.OS{Distro: "ubuntu", MajorVersion: 22, MinorVersion: 4, PackageFormat: "deb"}
	testing_ := inspect.OS{Distro: "debian", PackageFormat: "deb"} // trixie/sid: 0.0
	sles := inspect.OS{Distro: "sles", MajorVersion: 15, MinorVersion: 5, PackageFormat: "rpm"}
	fedora := inspect.OS{Distro: "fedora", MajorVersion: 39, PackageFormat: "rpm"}
	arch := inspect.OS{Distro: "archlinux", PackageFormat: "pacman"}
	windows := inspect.OS{Type: "windows", Distro: "windows", MajorVersion: 10}
	for _, c := range []struct {
		os   *inspect.OS
		app  inspect.Application
		want string
	}{
		{&deb, deb.Applications[0], "pkg:deb/debian/openssh-server@1:9.2p1-2%2Bdeb12u3?arch=amd64&distro=debian-12"},
		{&deb, deb.Applications[2], "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12"},
		{&ubuntu, inspect.Application{Name: "libc6", Version: "2.35", Release: "0ubuntu3.6", Arch: "amd64"}, "pkg:deb/ubuntu/libc6@2.35-0ubuntu3.6?arch=amd64&distro=ubuntu-22.04"},
		{&testing_, inspect.Application{Name: "bash", Version: "5.2.21", Release: "2"}, "pkg:deb/debian/bash@5.2.21-2"},
		{&rpm, rpm.Applications[0], "pkg:rpm/rocky/NetworkManager@1.46.0-8.el9_4?arch=x86_64&distro=rocky-9.4&epoch=1"},
		{&rpm, rpm.Applications[2], "pkg:rpm/rocky/gpg-pubkey@350d275d-6395c50d?distro=rocky-9.4"},
		{&rhel, inspect.Application{Name: "openssl", Epoch: 1, Version: "3.0.7", Release: "27.el9", Arch: "x86_64"}, "pkg:rpm/redhat/openssl@3.0.7-27.el9?arch=x86_64&distro=redhat-9.4&epoch=1"},
		{&sles, inspect.Application{Name: "zypper", Version: "1.14.64", Release: "150500.1.1", Arch: "x86_64"}, "pkg:rpm/suse/zypper@1.14.64-150500.1.1?arch=x86_64&distro=sles-15.5"},
		{&fedora, inspect.Application{Name: "bash", Version: "5.2.26", Release: "1.fc39", Arch: "x86_64"}, "pkg:rpm/fedora/bash@5.2.26-1.fc39?arch=x86_64&distro=fedora-39"},
		{&apk, apk.Applications[0], "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=3.19"},
		{&apk, inspect.Application{Name: "Py3-Foo", Version: "1.0", Release: "2"}, "pkg:apk/alpine/py3-foo@1.0-r2?distro=3.19"},
		{&arch, inspect.Application{Name: "pacman", Epoch: 1, Version: "6.0.2", Release: "9", Arch: "x86_64"}, "pkg:alpm/arch/pacman@1:6.0.2-9?arch=x86_64"},
		{&windows, inspect.Application{Name: "Mozilla Firefox", Version: "120.0"}, ""},
	} {
		if got := PURL(c.os, c.app); got != c.want {
			t.Errorf("%s %s: %q, want %q", c.os.Distro, c.app.Name, got, c.want)
		}
	}
}

// decodeCDX reads a document back with the library.
func decodeCDX(t *testing.T, b []byte) *cdx.BOM {
	t.Helper()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(bytes.NewReader(b), cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatalf("decode: %v\n%s", err, b)
	}
	return &bom
}

func TestCycloneDXDebian(t *testing.T) {
	rep := &inspect.Report{OperatingSystems: []inspect.OS{debianRoot()}}
	docs, err := CycloneDX(rep, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 1 {
		t.Fatalf("%d documents, want 1", len(docs))
	}
	bom := decodeCDX(t, docs[0])
	if bom.SpecVersion != cdx.SpecVersion1_6 || bom.BOMFormat != "CycloneDX" {
		t.Errorf("spec %v format %q", bom.SpecVersion, bom.BOMFormat)
	}
	if !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") {
		t.Errorf("serial %q", bom.SerialNumber)
	}
	m := bom.Metadata
	if m.Timestamp != "2026-12-05T06:00:00Z" {
		t.Errorf("timestamp %q", m.Timestamp)
	}
	if c := m.Component; c == nil || c.Type != cdx.ComponentTypeContainer || c.Name != "images/web-01.qcow2" ||
		c.Hashes == nil || (*c.Hashes)[0] != (cdx.Hash{Algorithm: cdx.HashAlgoSHA256, Value: strings.Repeat("ab", 32)}) {
		t.Errorf("subject %+v", c)
	}
	if tools := *m.Tools.Components; len(tools) != 1 || tools[0].Name != "guestkit-runner" || tools[0].Version != "1.2.3" {
		t.Errorf("tools %+v", tools)
	}
	comps := *bom.Components
	if os := comps[0]; os.Type != cdx.ComponentTypeOS || os.Name != "debian" || os.Version != "12.5" || os.Description != "Debian GNU/Linux 12 (bookworm)" {
		t.Errorf("OS component %+v", os)
	}
	var got []string
	for _, c := range comps[1:] {
		if c.Type != cdx.ComponentTypeLibrary || c.BOMRef != c.PackageURL {
			t.Errorf("component %+v", c)
		}
		got = append(got, c.Name+" "+c.Version+" "+c.PackageURL)
		if c.Licenses != nil {
			t.Errorf("%s: a licence the inspection never read: %+v", c.Name, c.Licenses)
		}
	}
	want := []string{
		"base-files 12.4+deb12u5 pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64&distro=debian-12",
		"bash 5.2.15-2+b2 pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12",
		"openssh-server 1:9.2p1-2+deb12u3 pkg:deb/debian/openssh-server@1:9.2p1-2%2Bdeb12u3?arch=amd64&distro=debian-12",
	}
	if !slices.Equal(got, want) {
		t.Errorf("components\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ssh := comps[3]
	if ssh.Description != "secure shell (SSH) server" || (*ssh.ExternalReferences)[0].URL != "https://www.openssh.com/" ||
		(*ssh.Properties)[0] != (cdx.Property{Name: "guestkit:source_package", Value: "openssh"}) {
		t.Errorf("openssh-server %+v", ssh)
	}
	deps := *bom.Dependencies
	if len(deps) != 2 || deps[0].Ref != "image" || (*deps[0].Dependencies)[0] != comps[0].BOMRef ||
		deps[1].Ref != comps[0].BOMRef || len(*deps[1].Dependencies) != 3 {
		t.Errorf("dependencies %+v", deps)
	}
}

func TestSPDXRPM(t *testing.T) {
	rep := &inspect.Report{OperatingSystems: []inspect.OS{rockyRoot()}}
	docs, err := SPDX(rep, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(docs[0]))
	if err != nil {
		t.Fatalf("read: %v\n%s", err, docs[0])
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.CreationInfo.Created != "2026-12-05T06:00:00Z" ||
		!strings.HasPrefix(doc.DocumentNamespace, "https://guestkit.io/spdx/") || doc.CreationInfo.Creators[0].Creator != "guestkit-runner-1.2.3" {
		t.Errorf("document %+v %+v", doc, doc.CreationInfo)
	}
	img, os := doc.Packages[0], doc.Packages[1]
	if img.PackageSPDXIdentifier != "Image" || img.PackageName != "images/web-01.qcow2" || img.PackageChecksums[0].Value != strings.Repeat("ab", 32) {
		t.Errorf("image %+v", img)
	}
	if os.PackageSPDXIdentifier != "OperatingSystem-1" || os.PrimaryPackagePurpose != "OPERATING_SYSTEM" || os.PackageName != "rocky" || os.PackageVersion != "9.4" {
		t.Errorf("OS %+v", os)
	}
	var got []string
	for _, p := range doc.Packages[2:] {
		purl := ""
		if len(p.PackageExternalReferences) == 1 {
			purl = p.PackageExternalReferences[0].Locator
		}
		got = append(got, p.PackageName+" "+p.PackageVersion+" "+purl)
		if p.PackageLicenseDeclared != "NOASSERTION" || p.PackageLicenseConcluded != "NOASSERTION" {
			t.Errorf("%s: licence %q/%q, want NOASSERTION", p.PackageName, p.PackageLicenseDeclared, p.PackageLicenseConcluded)
		}
	}
	want := []string{
		"NetworkManager 1:1.46.0-8.el9_4 pkg:rpm/rocky/NetworkManager@1.46.0-8.el9_4?arch=x86_64&distro=rocky-9.4&epoch=1",
		"bash 5.1.8-9.el9 pkg:rpm/rocky/bash@5.1.8-9.el9?arch=x86_64&distro=rocky-9.4",
		"gpg-pubkey 350d275d-6395c50d pkg:rpm/rocky/gpg-pubkey@350d275d-6395c50d?distro=rocky-9.4",
	}
	if !slices.Equal(got, want) {
		t.Errorf("packages\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var rels []string
	for _, r := range doc.Relationships {
		rels = append(rels, string(r.RefA.ElementRefID)+" "+r.Relationship+" "+string(r.RefB.ElementRefID))
	}
	if len(rels) != 5 || rels[0] != "DOCUMENT DESCRIBES Image" || rels[1] != "Image CONTAINS OperatingSystem-1" ||
		!strings.HasPrefix(rels[2], "OperatingSystem-1 CONTAINS Package-") {
		t.Errorf("relationships %q", rels)
	}
}

// A disk with two systems gives one document per root, each with the image
// as subject and only its own OS and packages.
func TestTwoRoots(t *testing.T) {
	rep := &inspect.Report{OperatingSystems: []inspect.OS{debianRoot(), alpineRoot("/dev/sda2")}}
	docs, err := CycloneDX(rep, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2", len(docs))
	}
	first, second := decodeCDX(t, docs[0]), decodeCDX(t, docs[1])
	if first.SerialNumber == second.SerialNumber {
		t.Error("both roots have one serial number")
	}
	c := *second.Components
	if c[0].Name != "alpine" || c[0].Version != "3.19" || len(c) != 3 ||
		c[1].PackageURL != "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=3.19" || c[1].Version != "1.36.1-r15" ||
		c[2].PackageURL != "pkg:apk/alpine/ca-certificates-bundle@20240226-r0?arch=x86_64&distro=3.19" {
		t.Errorf("second root's components %+v", c)
	}
	if second.Metadata.Component.Name != "images/web-01.qcow2" {
		t.Errorf("second root's subject %+v", second.Metadata.Component)
	}
	sp, err := SPDX(rep, testOpts)
	if err != nil || len(sp) != 2 {
		t.Fatalf("spdx: %d documents, %v", len(sp), err)
	}
	doc, err := spdxjson.Read(bytes.NewReader(sp[1]))
	if err != nil {
		t.Fatal(err)
	}
	if doc.Packages[1].PackageSPDXIdentifier != "OperatingSystem-2" || doc.Packages[1].PackageName != "alpine" || len(doc.Packages) != 4 {
		t.Errorf("second root's packages %+v", doc.Packages)
	}
}

// The same report gives the same bytes; another package changes the serial.
func TestDeterministic(t *testing.T) {
	rep := &inspect.Report{OperatingSystems: []inspect.OS{debianRoot()}}
	for name, write := range map[string]func(*inspect.Report, Options) ([][]byte, error){"cyclonedx": CycloneDX, "spdx": SPDX} {
		a, err := write(rep, testOpts)
		if err != nil {
			t.Fatal(err)
		}
		// Packages in another order: the same document.
		shuffled := debianRoot()
		slices.Reverse(shuffled.Applications)
		b, _ := write(&inspect.Report{OperatingSystems: []inspect.OS{shuffled}}, testOpts)
		if !bytes.Equal(a[0], b[0]) {
			t.Errorf("%s: another package order gives other bytes", name)
		}
		more := debianRoot()
		more.Applications = append(more.Applications, inspect.Application{Name: "telnetd", Version: "0.17+2.4", Release: "2", Arch: "amd64"})
		c, _ := write(&inspect.Report{OperatingSystems: []inspect.OS{more}}, testOpts)
		if bytes.Equal(a[0][:400], c[0][:400]) {
			t.Errorf("%s: a new package left the document's head (serial, namespace) unchanged", name)
		}
	}
}

func TestNoOS(t *testing.T) {
	for _, rep := range []*inspect.Report{nil, {OperatingSystems: []inspect.OS{}}} {
		if _, err := CycloneDX(rep, testOpts); !errors.Is(err, ErrNoOS) {
			t.Errorf("cyclonedx: %v, want ErrNoOS", err)
		}
		if _, err := SPDX(rep, testOpts); !errors.Is(err, ErrNoOS) {
			t.Errorf("spdx: %v, want ErrNoOS", err)
		}
	}
}
