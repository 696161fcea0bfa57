package netguard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"guestkit.io/batch/internal/netguard"
	"guestkit.io/batch/internal/store"
)

// server is a loopback HTTP server that counts the requests it saw.
type server struct {
	*httptest.Server
	n atomic.Int32
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.n.Add(1)
		h(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "image bytes") }

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// TestLoopbackRefused: the guard refuses 127.0.0.1 before the server sees
// anything, and the error names the URL (redacted), the address and the rule.
func TestLoopbackRefused(t *testing.T) {
	s := newServer(t, ok)
	uri := s.URL + "/x.qcow2?X-Amz-Signature=s3cr3t"
	_, err := store.URIs{HTTP: netguard.Guard{}.HTTPClient(5 * time.Second)}.Get(t.Context(), uri, 100)
	if !errors.Is(err, netguard.ErrRefused) {
		t.Fatalf("err = %v, want ErrRefused", err)
	}
	var re *netguard.RefusedError
	if !errors.As(err, &re) || re.Addr != netip.MustParseAddr("127.0.0.1") || re.Rule != "loopback" {
		t.Errorf("refusal = %+v", re)
	}
	for _, want := range []string{s.URL + "/x.qcow2?<redacted>", "127.0.0.1 is loopback", "refused by the network guard"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error leaks the signature: %v", err)
	}
	if n := s.n.Load(); n != 0 {
		t.Errorf("the server saw %d requests, want 0", n)
	}
}

// TestAllowed: a CIDR in Allow is dialled.
func TestAllowed(t *testing.T) {
	s := newServer(t, ok)
	b, err := store.URIs{HTTP: netguard.Guard{Allow: loopback}.HTTPClient(5 * time.Second)}.Get(t.Context(), s.URL+"/x.qcow2", 100)
	if err != nil || string(b) != "image bytes" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	if n := s.n.Load(); n != 1 {
		t.Errorf("the server saw %d requests, want 1", n)
	}
	// Allowing one address lets only that one through.
	g := netguard.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	if _, err := g.HTTPClient(5 * time.Second).Get(s.URL); !errors.Is(err, netguard.ErrRefused) {
		t.Errorf("127.0.0.1 with only 127.0.0.2 allowed: %v", err)
	}
}

// TestHostnameRefused: the check is on the address dialled, after DNS, so
// a name resolving to loopback (or rebinding to it) is refused too.
func TestHostnameRefused(t *testing.T) {
	s := newServer(t, ok)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	_, err := netguard.Guard{}.HTTPClient(5 * time.Second).Get("http://localhost:" + port + "/x.qcow2")
	if !errors.Is(err, netguard.ErrRefused) || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("err = %v, want a loopback refusal", err)
	}
	if n := s.n.Load(); n != 0 {
		t.Errorf("the server saw %d requests, want 0", n)
	}
}

// TestRedirectRefused: even between allowed servers, a redirect is not
// followed; the target is named without its query.
func TestRedirectRefused(t *testing.T) {
	second := newServer(t, ok)
	first := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, second.URL+"/y.qcow2?X-Amz-Signature=s3cr3t", http.StatusFound)
	})
	_, err := store.URIs{HTTP: netguard.Guard{Allow: loopback}.HTTPClient(5 * time.Second)}.Get(t.Context(), first.URL+"/x.qcow2", 100)
	if !errors.Is(err, netguard.ErrRedirect) {
		t.Fatalf("err = %v, want ErrRedirect", err)
	}
	want := "redirect refused: HTTP 302 Found to " + second.URL + "/y.qcow2?<redacted>"
	if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("err = %v, want it to say %q", err, want)
	}
	if first.n.Load() != 1 || second.n.Load() != 0 {
		t.Errorf("first saw %d requests, second %d; want 1, 0", first.n.Load(), second.n.Load())
	}
}

// refused are addresses the guard refuses whatever is listening there.
var refused = []struct{ addr, rule string }{
	{"169.254.169.254", "link-local (cloud metadata)"},
	{"10.0.0.1", "private"},
	{"172.16.5.4", "private"},
	{"192.168.1.1", "private"},
	{"100.100.100.200", "private (carrier-grade NAT)"},
	{"127.0.0.1", "loopback"},
	{"127.9.9.9", "loopback"},
	{"0.0.0.0", "unspecified"},
	{"0.1.2.3", "unspecified (this network)"},
	{"224.0.0.1", "multicast"},
	{"239.1.2.3", "multicast"},
	{"255.255.255.255", "broadcast"},
	{"240.0.0.1", "reserved (class E)"},
	{"::1", "loopback"},
	{"::", "unspecified"},
	{"fe80::1", "link-local (cloud metadata)"},
	{"fd00:ec2::254", "private"},
	{"fec0::1", "private (site-local)"},
	{"ff02::1", "multicast"},
	{"::ffff:127.0.0.1", "loopback, IPv4-mapped"},
	{"::ffff:169.254.169.254", "link-local (cloud metadata), IPv4-mapped"},
	{"::ffff:10.1.2.3", "private, IPv4-mapped"},
	{"::127.0.0.1", "loopback, IPv4-compatible"},
	{"2002:a9fe:a9fe::1", "link-local (cloud metadata), 6to4"},
	{"2002:7f00:1::", "loopback, 6to4"},
	{"64:ff9b::a9fe:a9fe", "link-local (cloud metadata), NAT64"},
	{"64:ff9b:1::1", "private (local-use NAT64)"},
	{"2001:0:a00:1::1", "private, Teredo server"},
}

// TestCheck: the rules, and the public addresses they leave alone.
func TestCheck(t *testing.T) {
	var g netguard.Guard
	for _, tc := range refused {
		err := g.Check(netip.MustParseAddr(tc.addr))
		var re *netguard.RefusedError
		if !errors.As(err, &re) || re.Rule != tc.rule || !errors.Is(err, netguard.ErrRefused) {
			t.Errorf("Check(%s) = %v, want rule %q", tc.addr, err, tc.rule)
		}
	}
	for _, a := range []string{"93.184.215.14", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "2002:5db8:d70e::1", "64:ff9b::808:808", "::ffff:8.8.8.8"} {
		if err := g.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("Check(%s) = %v, want nil", a, err)
		}
	}
	allow, err := netguard.ParseCIDRs("10.0.0.0/8, 169.254.169.254")
	if err != nil {
		t.Fatal(err)
	}
	g = netguard.Guard{Allow: allow}
	for _, a := range []string{"10.0.0.1", "10.255.0.1", "::ffff:10.0.0.1", "169.254.169.254"} {
		if err := g.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("allowed Check(%s) = %v", a, err)
		}
	}
	for _, a := range []string{"169.254.169.253", "192.168.0.1", "127.0.0.1"} {
		if err := g.Check(netip.MustParseAddr(a)); err == nil {
			t.Errorf("Check(%s) passed; only 10/8 and one address are allowed", a)
		}
	}
}

// TestDialRefused: the dialer's Control refuses before connect, so no
// packet leaves and no network is needed: each dial ends at once.
func TestDialRefused(t *testing.T) {
	d := netguard.Guard{}.Dialer()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, tc := range refused {
		start := time.Now()
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(tc.addr, "80"))
		if c != nil {
			c.Close()
		}
		if errors.Is(err, syscall.EAFNOSUPPORT) && strings.Contains(tc.addr, ":") {
			t.Logf("%s: no IPv6 here: %v", tc.addr, err)
			continue
		}
		// Go dials an IPv4-mapped address as IPv4: the rule is the same.
		rule := strings.TrimSuffix(tc.rule, ", IPv4-mapped")
		if !errors.Is(err, netguard.ErrRefused) || !strings.Contains(err.Error(), rule) {
			t.Errorf("dial %s: %v, want a %s refusal", tc.addr, err, rule)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("dial %s took %s: it was attempted", tc.addr, d)
		}
	}
	// Through the client too, for the addresses that matter most.
	c := netguard.Guard{}.HTTPClient(5 * time.Second)
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]:9/", "http://[fe80::1%25lo]/", "http://0.0.0.0:9/", "http://224.0.0.1/", "http://[::ffff:127.0.0.1]:9/"} {
		_, err := c.Get(u)
		if errors.Is(err, syscall.EAFNOSUPPORT) {
			continue
		}
		if !errors.Is(err, netguard.ErrRefused) {
			t.Errorf("GET %s: %v, want ErrRefused", u, err)
		}
	}
}

// TestBounded: a slow server and an endless body end, in time and size.
func TestBounded(t *testing.T) {
	stop := make(chan struct{})
	defer close(stop)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow-headers":
			select {
			case <-stop:
			case <-r.Context().Done():
			}
		case "/slow-body":
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			select {
			case <-stop:
			case <-r.Context().Done():
			}
		case "/endless":
			b := make([]byte, 64<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(b); err != nil {
					return
				}
			}
		case "/huge-headers":
			for i := range 200 {
				w.Header().Set(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("p", 1000))
			}
		case "/claims-huge":
			w.Header().Set("Content-Length", "1099511627776")
			w.Write([]byte("x"))
		}
	})
	g := netguard.Guard{Allow: loopback}
	for _, path := range []string{"/slow-headers", "/slow-body"} {
		start := time.Now()
		_, err := store.URIs{HTTP: g.HTTPClient(300 * time.Millisecond)}.Get(t.Context(), s.URL+path, 100)
		if err == nil || time.Since(start) > 5*time.Second {
			t.Errorf("%s: err %v after %s", path, err, time.Since(start))
		}
	}
	u := store.URIs{HTTP: g.HTTPClient(10 * time.Second)}
	for _, path := range []string{"/endless", "/claims-huge"} {
		if _, err := u.Get(t.Context(), s.URL+path, 1<<20); !errors.Is(err, store.ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", path, err)
		}
	}
	if _, err := u.Get(t.Context(), s.URL+"/huge-headers", 100); err == nil || !strings.Contains(err.Error(), "header") {
		t.Errorf("/huge-headers: %v, want a header size error", err)
	}
}

// TestClientTransport: no proxy from the environment (it would be dialled
// instead of the target, unchecked), and bounded timeouts.
func TestClientTransport(t *testing.T) {
	c := netguard.Guard{}.HTTPClient(time.Minute)
	tr, isTransport := c.Transport.(*http.Transport)
	if !isTransport {
		t.Fatalf("transport %T", c.Transport)
	}
	if tr.Proxy != nil || tr.DialContext == nil || tr.DialTLSContext != nil {
		t.Error("the transport must dial through the guard only, with no proxy")
	}
	if tr.TLSHandshakeTimeout <= 0 || tr.ResponseHeaderTimeout <= 0 || tr.IdleConnTimeout <= 0 || c.Timeout != time.Minute || c.CheckRedirect == nil {
		t.Errorf("unbounded: %+v, client timeout %s", tr, c.Timeout)
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := netguard.ParseCIDRs(" 10.1.2.3/8, 127.0.0.1,,fd00::/8 ,::1")
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("::1/128")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("ParseCIDRs = %v, %v; want %v", got, err, want)
	}
	if got, err := netguard.ParseCIDRs(""); err != nil || len(got) != 0 {
		t.Errorf("ParseCIDRs(\"\") = %v, %v", got, err)
	}
	for _, bad := range []string{"10.0.0.0/33", "localhost", "10.0.0.0/8;", "fe80::/129"} {
		if _, err := netguard.ParseCIDRs(bad); err == nil || !strings.Contains(err.Error(), "CIDR") {
			t.Errorf("ParseCIDRs(%q) = %v, want an error", bad, err)
		}
	}
}
