// Package netguard keeps URLs named by strangers' job specs off the
// network of whoever fetches them: loopback, link-local (cloud metadata),
// private, multicast and unspecified addresses are refused unless the
// operator allowed their CIDR. The check runs in the dialer, on the address
// actually dialled, after DNS: a name that resolves, or rebinds, to such an
// address is refused too, before any packet is sent.
package netguard

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"guestkit.io/batch/internal/redact"
)

var (
	// ErrRefused is matched (errors.Is) by every dial the guard refused.
	ErrRefused = errors.New("refused by the network guard")
	// ErrRedirect is matched by every redirect the guard's client refused.
	ErrRedirect = errors.New("redirect refused")
)

// RefusedError is one refused dial: the address and the rule it broke.
type RefusedError struct {
	Addr netip.Addr
	Rule string // "loopback", "private (10.0.0.0/8)", ...
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s is %s: %v (its CIDR is not allowed)", e.Addr, e.Rule, ErrRefused)
}

func (e *RefusedError) Unwrap() error { return ErrRefused }

// Guard refuses dials to non-public addresses outside Allow.
type Guard struct {
	// Allow exempts these CIDRs (an in-cluster image server, say).
	Allow []netip.Prefix
}

// Timeouts of HTTPClient's transport.
const (
	DialTimeout           = 10 * time.Second
	TLSHandshakeTimeout   = 10 * time.Second
	ResponseHeaderTimeout = 30 * time.Second
	IdleConnTimeout       = 30 * time.Second
)

// Check returns a *RefusedError when a may not be dialled.
func (g Guard) Check(a netip.Addr) error {
	a = a.WithZone("") // prefixes never contain zoned addresses
	r := rule(a)
	if r == "" {
		return nil
	}
	for _, p := range g.Allow {
		if p.Contains(a) || p.Contains(a.Unmap()) {
			return nil
		}
	}
	return &RefusedError{Addr: a, Rule: r}
}

// Control is a net.Dialer Control function: it runs after DNS, on the
// address about to be connected, before the connect.
func (g Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil { // fail closed: only IP addresses reach a dialer's Control
		return fmt.Errorf("%w: dialled address %q is not an IP address and port", ErrRefused, address)
	}
	return g.Check(ap.Addr())
}

// Dialer is a net.Dialer that dials only what Check allows.
func (g Guard) Dialer() *net.Dialer {
	return &net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second, Control: g.Control}
}

// HTTPClient is an http.Client that dials through Dialer and refuses
// redirects. timeout bounds each whole exchange, body included; 0 leaves
// that to the request's context (an image download takes as long as its
// job allows). Errors from http.Client carry the URL unredacted: callers
// name it themselves (store.URIs does, with redact.URL).
func (g Guard) HTTPClient(timeout time.Duration) *http.Client {
	t := &http.Transport{
		// No proxy from the environment: the proxy would be dialled, and
		// would fetch the target on the guard's behalf, unchecked.
		Proxy:                  nil,
		DialContext:            g.Dialer().DialContext,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    TLSHandshakeTimeout,
		ResponseHeaderTimeout:  ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		IdleConnTimeout:        IdleConnTimeout,
		MaxIdleConns:           8,
		MaxResponseHeaderBytes: 64 << 10,
		// No transparent gunzip: a small compressed body must not become
		// an unbounded one.
		DisableCompression: true,
	}
	return &http.Client{Transport: t, Timeout: timeout, CheckRedirect: refuseRedirect}
}

// refuseRedirect refuses every redirect: the dialer would check the new
// address, but following one is never needed for a URL a spec names, and
// refusing is simpler to reason about (no scheme downgrade, no hops).
func refuseRedirect(req *http.Request, _ []*http.Request) error {
	status := "a redirect"
	if req.Response != nil {
		c := req.Response.StatusCode
		status = fmt.Sprintf("HTTP %d %s", c, http.StatusText(c))
	}
	return fmt.Errorf("%w: %s to %s; name the final URL", ErrRedirect, status, redact.URL(req.URL.String()))
}

// ParseCIDRs parses a comma-separated list of CIDRs (a flag's value); a
// bare address is its own /32 or /128. Empty items are skipped.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("CIDR %q: %w", f, err)
			}
			out = append(out, netip.PrefixFrom(a.WithZone(""), a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("CIDR %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

type rangeRule struct {
	p    netip.Prefix
	rule string
}

func cidrRule(cidr, rule string) rangeRule { return rangeRule{netip.MustParsePrefix(cidr), rule} }

// special are the ranges netip's Is* methods do not name.
var special = []rangeRule{
	cidrRule("0.0.0.0/8", "unspecified (this network)"),
	cidrRule("100.64.0.0/10", "private (carrier-grade NAT)"),
	cidrRule("192.0.0.0/24", "reserved (IETF protocol assignments)"),
	cidrRule("198.18.0.0/15", "reserved (benchmarking)"),
	cidrRule("255.255.255.255/32", "broadcast"),
	cidrRule("240.0.0.0/4", "reserved (class E)"),
	cidrRule("fec0::/10", "private (site-local)"),
	cidrRule("64:ff9b:1::/48", "private (local-use NAT64)"),
}

var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96")
	teredo = netip.MustParsePrefix("2001::/32")
)

// rule names why a may not be dialled, or returns "" for a public address.
func rule(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid"
	}
	if a.Is4In6() { // ::ffff:a.b.c.d is dialled as a.b.c.d
		if r := rule(a.Unmap()); r != "" {
			return r + ", IPv4-mapped"
		}
		return ""
	}
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsLinkLocalUnicast():
		return "link-local (cloud metadata)"
	case a.IsMulticast():
		return "multicast"
	case a.IsPrivate():
		return "private"
	}
	for _, s := range special {
		if s.p.Contains(a) {
			return s.rule
		}
	}
	if a.Is6() {
		for _, e := range embedded(a) {
			if r := rule(e.v4); r != "" {
				return r + ", " + e.form
			}
		}
	}
	return ""
}

type embeddedV4 struct {
	v4   netip.Addr
	form string
}

// embedded returns the IPv4 addresses an IPv6 address carries in the forms
// that gateways translate to IPv4: a NAT64 or 6to4 relay, or Teredo, would
// otherwise carry a packet to a private IPv4 address.
func embedded(a netip.Addr) []embeddedV4 {
	b := a.As16()
	v4 := func(i int) netip.Addr { return netip.AddrFrom4([4]byte(b[i : i+4])) }
	var zero [12]byte
	switch {
	case [12]byte(b[:12]) == zero: // ::a.b.c.d, IPv4-compatible (deprecated)
		return []embeddedV4{{v4(12), "IPv4-compatible"}}
	case b[0] == 0x20 && b[1] == 0x02: // 2002:AABB:CCDD::/48
		return []embeddedV4{{v4(2), "6to4"}}
	case nat64.Contains(a):
		return []embeddedV4{{v4(12), "NAT64"}}
	case teredo.Contains(a): // server, then client XOR 0xff
		client := [4]byte{b[12] ^ 0xff, b[13] ^ 0xff, b[14] ^ 0xff, b[15] ^ 0xff}
		return []embeddedV4{{v4(4), "Teredo server"}, {netip.AddrFrom4(client), "Teredo client"}}
	}
	return nil
}
