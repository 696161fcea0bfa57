package profile

import (
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML for CI systems: one testsuite
// per evaluated profile, one testcase per rule (classname
// guestkit.<profile>, name the rule id). A failed rule has a <failure>
// whose type is the severity and whose body is the evidence; error gives
// <error>; notapplicable and notchecked give <skipped> with the status and
// the reason, and the suite's properties count them apart (notapplicable,
// notchecked, applicable, and a note when no rule applies to the guest);
// passed rules carry their evidence in <system-out>.
func WriteJUnit(w io.Writer, rep *Report) error {
	out := junitSuites{Name: "guestkit profile"}
	for _, p := range rep.Profiles {
		s := junitSuite{Name: p.Name, Time: "0"}
		s.Properties = append(s.Properties,
			junitProperty{Name: "title", Value: p.Title},
			junitProperty{Name: "threshold", Value: string(rep.Threshold)},
			junitProperty{Name: "noncompliant", Value: fmt.Sprint(p.Noncompliant)},
			// JUnit has one skipped count: these say which skips are rules
			// that do not apply (another OS, software not installed) and
			// which could not be decided.
			junitProperty{Name: "applicable", Value: fmt.Sprint(p.Applicable)},
			junitProperty{Name: "notapplicable", Value: fmt.Sprint(p.Counts.NotApplicable)},
			junitProperty{Name: "notchecked", Value: fmt.Sprint(p.Counts.NotChecked)},
		)
		if p.Note != "" {
			s.Properties = append(s.Properties, junitProperty{Name: "note", Value: p.Note})
		}
		if p.PassRate != nil {
			s.Properties = append(s.Properties, junitProperty{Name: "pass_rate", Value: fmt.Sprintf("%.4f", *p.PassRate)})
		}
		for _, r := range rep.Results {
			if !slices.Contains(r.Profiles, p.Name) {
				continue
			}
			var lines []string
			for _, e := range r.Evidence {
				lines = append(lines, evidenceLine(e))
			}
			body := strings.Join(lines, "\n")
			c := junitCase{Name: r.ID, ClassName: "guestkit." + p.Name, Time: "0"}
			msg := fmt.Sprintf("[%s] %s", r.Severity, r.Title)
			switch r.Status {
			case StatusFail:
				if r.Remediation != "" {
					body += "\nRemediation: " + r.Remediation
				}
				c.Failure = &junitMessage{Message: msg, Type: string(r.Severity), Body: body}
				s.Failures++
			case StatusError:
				c.Error = &junitMessage{Message: msg, Type: "error", Body: body}
				s.Errors++
			case StatusNotApplicable, StatusNotChecked:
				c.Skipped = &junitMessage{Message: string(r.Status) + ": " + strings.Join(lines, "; ")}
				s.Skipped++
			default:
				c.SystemOut = body
			}
			s.Tests++
			s.Cases = append(s.Cases, c)
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
