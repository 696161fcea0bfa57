package exitcode

import "testing"

func TestTables(t *testing.T) {
	for prog, codes := range map[string][]Code{"runner": Runner(), "dispatcher": Dispatcher()} {
		names := map[string]bool{}
		for i, c := range codes {
			if c.Code < 0 || c.Code > 255 {
				t.Errorf("%s %s: %d is not an exit status", prog, c.Name, c.Code)
			}
			if i > 0 && c.Code <= codes[i-1].Code {
				t.Errorf("%s %s: %d after %d; codes are listed once, by value", prog, c.Name, c.Code, codes[i-1].Code)
			}
			if names[c.Name] || c.Name == "" || c.Meaning == "" {
				t.Errorf("%s %d: name %q twice or empty, or no meaning", prog, c.Code, c.Name)
			}
			names[c.Name] = true
		}
	}
	for _, c := range Dispatcher() {
		if c.NonRetryable {
			t.Errorf("dispatcher %s: NonRetryable is for runner codes", c.Name)
		}
	}
}
