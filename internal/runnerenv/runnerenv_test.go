package runnerenv_test

import (
	"regexp"
	"slices"
	"testing"

	"guestkit.io/batch/internal/runnerenv"
	"guestkit.io/batch/templates"
)

// The Job template sets every variable of Pod(), and no other GUESTKIT_
// variable: the list and the template cannot drift apart.
func TestTemplateSetsThePodVariables(t *testing.T) {
	var set []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- name: ([A-Z_]+)\s*$`).FindAllStringSubmatch(string(templates.JobTemplate()), -1) {
		set = append(set, m[1])
	}
	for _, v := range runnerenv.Pod() {
		if !slices.Contains(set, v) {
			t.Errorf("the Job template does not set %s", v)
		}
	}
	for _, v := range set {
		if !slices.Contains(runnerenv.Pod(), v) {
			t.Errorf("the Job template sets %s, which runnerenv does not list", v)
		}
	}
	if len(set) < len(runnerenv.Pod()) {
		t.Fatalf("found only %v in the template", set)
	}
}

func TestPerJobIsPartOfPod(t *testing.T) {
	for _, v := range runnerenv.PerJob() {
		if !runnerenv.IsPerJob(v) || !slices.Contains(runnerenv.Pod(), v) {
			t.Errorf("%s", v)
		}
	}
	for _, v := range []string{runnerenv.Home, runnerenv.CacheDir, runnerenv.LibguestfsBackend, "PATH"} {
		if runnerenv.IsPerJob(v) {
			t.Errorf("%s is not set per job", v)
		}
	}
}
