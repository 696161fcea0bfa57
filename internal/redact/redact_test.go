package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://h/b/k?X-Amz-Signature=secret&X-Amz-Credential=c": "https://h/b/k?<redacted>",
		"http://h/k?sig=secret":                                   "http://h/k?<redacted>",
		"HTTPS://h/k?sig=secret":                                  "https://h/k?<redacted>",
		"https://user:pass@h:8443/k?sig=secret":                   "https://h:8443/k?<redacted>",
		"https://user:p@ss@h/k":                                   "https://h/k",
		"https://h/k#access_token=secret":                         "https://h/k",
		"https://h?sig=secret":                                    "https://h?<redacted>",
		"https://h/a@b/k":                                         "https://h/a@b/k", // an '@' in the path is no userinfo
		"/elsewhere?X-Amz-Signature=secret":                       "/elsewhere?<redacted>",
		"elsewhere?sig=secret":                                    "elsewhere?<redacted>",
		"s3://b/k?endpoint=http://h:9000":                         "s3://b/k?endpoint=http://h:9000",
		"minio://key:secret@b/k":                                  "minio://b/k",
		"file:///var/img.qcow2":                                   "file:///var/img.qcow2",
		"/tmp/x\ny":                                               "/tmp/x?y",
		"images/100%.qcow2":                                       "images/100%.qcow2",
		"1http://h/k?sig=secret":                                  "1http://h/k?<redacted>", // no scheme: still a query
		"":                                                        "",
		"https://h/\x1b[31m?sig=s":                                "https://h/?[31m?<redacted>",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
	long := "https://h/" + strings.Repeat("k", 500)
	if got := URL(long); len(got) != maxLen+3 || !strings.HasSuffix(got, "...") {
		t.Errorf("URL of %d bytes gave %d bytes", len(long), len(got))
	}
}

// FuzzURL: whatever the input, no secret survives: nothing after a '?' of
// an http(s) URL, no userinfo, no fragment; and the output is printable.
func FuzzURL(f *testing.F) {
	for _, s := range []string{"https://u:p@h/k?sig=SECRET#frag", "/x?SECRET", "s3://b/k?endpoint=x", "http://h\x00/?SECRET"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := URL(s)
		for _, r := range got {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("URL(%q) = %q: a control character", s, got)
			}
		}
		if len(got) > maxLen+3 {
			t.Fatalf("URL(%q) is %d bytes", s, len(got))
		}
		// The query of an http(s) URL never shows (one long enough to
		// tell apart from the rest of the URL).
		if scheme, _, _ := splitScheme(s); (scheme == "http" || scheme == "https") && strings.IndexByte(s, '?') >= 0 {
			i := strings.IndexByte(s, '?')
			if q := Printable(s[i+1:]); len(q) >= 8 && !strings.Contains(Printable(s[:i]), q) && strings.Contains(got, q) {
				t.Fatalf("URL(%q) = %q: the query shows", s, got)
			}
		}
		// Nor does a userinfo's password.
		if _, rest, ok := splitScheme(s); ok {
			auth := rest
			if j := strings.IndexAny(auth, "/?#"); j >= 0 {
				auth = auth[:j]
			}
			if at := strings.LastIndexByte(auth, '@'); at >= 8 && strings.Contains(got, Printable(auth[:at])) && !strings.Contains(Printable(rest[at:]), Printable(auth[:at])) {
				t.Fatalf("URL(%q) = %q: the userinfo shows", s, got)
			}
		}
	})
}
