package sbom

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"guestkit.io/batch/internal/inspect"
)

// ErrNoOS means the report has no OS root, so there is no inventory to
// write (a failed job, a disk without an OS).
var ErrNoOS = errors.New("no operating system root: no packages to list")

// Subject is the image a document describes.
type Subject struct {
	// Name is the image as the job named it (a bucket key, a URI, a path).
	Name string
	// SHA256 is the image's digest, hex; "" when it was not verified.
	SHA256 string
	// JobID names the job whose inspection this is.
	JobID string
}

// Tool is the program that wrote the document.
type Tool struct {
	Name, Version string
}

// Options are what the report does not hold.
type Options struct {
	Subject Subject
	Tool    Tool
	// Created is the document's creation time (the runner passes the
	// result's finished_at, so the same result gives the same bytes).
	Created time.Time
}

// root is one OS root with its packages, sorted and without duplicates.
type root struct {
	index    int // 1-based, in report order
	os       *inspect.OS
	family   string // Trivy's name for the OS: debian, redhat, alpine, ...
	version  string // "" when unknown
	packages []pkg
}

// pkg is one installed package.
type pkg struct {
	app     inspect.Application
	version string // as the package manager writes it
	purl    string // "" for formats without a purl type
	ref     string // unique in the document: the purl, or a guestkit: ref
}

// roots splits the report into its OS roots.
func roots(rep *inspect.Report) ([]root, error) {
	if rep == nil || len(rep.OperatingSystems) == 0 {
		return nil, ErrNoOS
	}
	out := make([]root, 0, len(rep.OperatingSystems))
	for i := range rep.OperatingSystems {
		o := &rep.OperatingSystems[i]
		r := root{index: i + 1, os: o, family: Family(o), version: osVersion(o)}
		seen := map[string]bool{}
		for _, a := range o.Applications {
			p := pkg{app: a, version: a.PackageVersion(o.PackageFormat), purl: PURL(o, a)}
			p.ref = p.purl
			if p.ref == "" {
				p.ref = fmt.Sprintf("guestkit:root-%d:%s@%s", r.index, a.Name, p.version)
				if a.Arch != "" {
					p.ref += "?arch=" + a.Arch
				}
			}
			if seen[p.ref] {
				continue // the same package listed twice is one component
			}
			seen[p.ref] = true
			r.packages = append(r.packages, p)
		}
		slices.SortFunc(r.packages, func(a, b pkg) int {
			return cmp.Or(cmp.Compare(a.app.Name, b.app.Name), cmp.Compare(a.version, b.version),
				cmp.Compare(a.app.Arch, b.app.Arch), cmp.Compare(a.ref, b.ref))
		})
		out = append(out, r)
	}
	return out, nil
}

// families maps libguestfs's distro names to Trivy's OS families (its
// fanal/types OSType), where they differ.
var families = map[string]string{
	"alpinelinux": "alpine",
	"rhel":        "redhat",
	"oraclelinux": "oracle",
	"amazonlinux": "amazon",
	"almalinux":   "alma",
	"archlinux":   "arch",
}

// Family is the OS's distribution as Trivy names it: the CycloneDX
// operating-system component's name and the purl namespace's base.
func Family(o *inspect.OS) string {
	d := strings.ToLower(o.Distro)
	if f, ok := families[d]; ok {
		return f
	}
	if d == "" || d == "unknown" {
		return strings.ToLower(o.Type)
	}
	return d
}

// osVersion is the OS version as Trivy writes it, from what the inspection
// knows (major.minor): "12.5", "22.04", "9.4", "39"; "" when unknown.
func osVersion(o *inspect.OS) string {
	if o.MajorVersion == 0 && o.MinorVersion == 0 {
		return ""
	}
	switch Family(o) {
	case "ubuntu":
		return fmt.Sprintf("%d.%02d", o.MajorVersion, o.MinorVersion)
	case "fedora", "amazon":
		if o.MinorVersion == 0 {
			return strconv.Itoa(o.MajorVersion)
		}
	}
	return fmt.Sprintf("%d.%d", o.MajorVersion, o.MinorVersion)
}

// documentUUID is a name-based UUID of everything the document says, so
// that its serial number (or namespace) changes when its content does and
// only then.
func documentUUID(format string, opts Options, r root) uuid.UUID {
	h := sha256.New()
	for _, s := range []string{format, opts.Subject.Name, opts.Subject.SHA256, opts.Subject.JobID, r.os.Root, r.family, r.version} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	for _, p := range r.packages {
		h.Write([]byte(p.ref))
		h.Write([]byte{0})
	}
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://guestkit.io/sbom/"+hex.EncodeToString(h.Sum(nil))))
}

// created is opts.Created in RFC 3339, UTC, to the second (both formats
// want that shape).
func created(opts Options) string {
	return opts.Created.UTC().Truncate(time.Second).Format(time.RFC3339)
}

// toolName is "guestkit-runner" unless the caller said otherwise.
func toolName(opts Options) (string, string) {
	return cmp.Or(opts.Tool.Name, "guestkit-runner"), cmp.Or(opts.Tool.Version, "dev")
}

// subjectName is the subject's name, or the job's when the image has none.
func subjectName(opts Options) string {
	return cmp.Or(opts.Subject.Name, opts.Subject.JobID, "image")
}
