package runner_test

import (
	"testing"

	"guestkit.io/batch/internal/inspect/inspecttest"
	"guestkit.io/batch/internal/result"
	"guestkit.io/batch/internal/spec"
)

// allowedDifferences are the only ways the direct backend's data may
// differ from the appliance's, each with its reason. A path is the JSON
// path of a value (".operating_systems[0].applications[3].version").
var allowedDifferences = []inspecttest.Allowed{
	// None yet: add one only with the reason it cannot be the same.
}

// compareBackends requires the direct backend's result data to equal the
// appliance's, field by field, but for allowedDifferences; and the
// results to say which backend ran.
func compareBackends(t *testing.T, appliance, direct *result.Result) {
	t.Helper()
	// An image the probe refuses is refused before either backend opens it.
	refusedByProbe := appliance.Backend == nil && direct.Backend == nil && appliance.Error != nil && direct.Error != nil &&
		appliance.Error.Phase == result.PhaseProbe && direct.Error.Phase == result.PhaseProbe
	if !refusedByProbe {
		if appliance.Backend == nil || appliance.Backend.Used != spec.BackendAppliance {
			t.Errorf("appliance run: backend %+v", appliance.Backend)
		}
		if direct.Backend == nil || direct.Backend.Used != spec.BackendDirect || direct.Backend.Fallback != "" || direct.Accelerator != nil {
			t.Errorf("direct run: backend %+v, accelerator %+v", direct.Backend, direct.Accelerator)
		}
	}
	if direct.Status != appliance.Status || direct.ExitCode != appliance.ExitCode || codeOf(direct) != codeOf(appliance) {
		t.Errorf("direct: %s exit %d %s; appliance: %s exit %d %s", direct.Status, direct.ExitCode, codeOf(direct),
			appliance.Status, appliance.ExitCode, codeOf(appliance))
	}
	diffs, err := inspecttest.Diff(appliance.Data, direct.Data, allowedDifferences)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range diffs {
		t.Errorf("direct differs from the appliance (appliance | direct): %s", p)
	}
}

func codeOf(r *result.Result) string {
	if r.Error == nil {
		return ""
	}
	return string(r.Error.Code)
}
