// Package names is the registry of profile names. It lives apart from
// package profile so that the spec validator, the command lines, the bench
// and the docs tests can name profiles without linking the rule engine.
// Package profile gives each name its title and rules; its tests check that
// it has exactly these names.
package names

// The profiles, as job specs, flags and reports spell them.
const (
	Security        = "security"
	Compliance      = "compliance"
	Hardening       = "hardening"
	CISLevel1Server = "cis-level1-server"
	CISLevel2Server = "cis-level2-server"
	PCIDSS          = "pci-dss"
)

// All returns every profile name, in registry order (the order of reports
// and of error messages).
func All() []string {
	return []string{Security, Compliance, Hardening, CISLevel1Server, CISLevel2Server, PCIDSS}
}

// Defaults returns the profiles evaluated when none is named: the seed
// profiles of the guestkit worker, which every non-legacy rule belongs to
// except the few whose threshold only one framework asks for.
func Defaults() []string { return []string{Security, Compliance, Hardening} }
