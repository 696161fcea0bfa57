package inventory

import (
	"bytes"
	"encoding/csv"
	"testing"
)

func TestCSVSpreadsheetSafe(t *testing.T) {
	a := &Answer{Query: QueryInfo{Kind: KindPackage}, Packages: []PackageRow{{
		ImageKey: "=HYPERLINK(\"http://x\")", Name: "+cmd", Version: "1.0", Arch: "@sum", Root: "-2+3", Distro: "debian",
	}}}
	var b bytes.Buffer
	if err := WriteCSV(&b, a); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	got := rows[1]
	for i, want := range map[int]string{0: "'=HYPERLINK(\"http://x\")", 1: "'-2+3", 2: "debian", 5: "'+cmd", 6: "1.0", 7: "'@sum"} {
		if got[i] != want {
			t.Errorf("column %s = %q, want %q", rows[0][i], got[i], want)
		}
	}
}
