package controller

import (
	"slices"
	"strings"
	"testing"

	"guestkit.io/batch/internal/intake"
)

func keysOf(es []*intake.Entry) []string {
	var k []string
	for _, e := range es {
		k = append(k, strings.TrimPrefix(strings.TrimSuffix(e.Key, ".json"), "jobs/"))
	}
	return k
}

func entries(keys ...string) []*intake.Entry {
	var es []*intake.Entry
	for _, k := range keys {
		es = append(es, &intake.Entry{Key: "jobs/" + k + ".json"})
	}
	return es
}

func TestFairOrder(t *testing.T) {
	for _, tt := range []struct {
		name    string
		pending []string
		active  []string
		want    []string
	}{
		{"one tenant keeps its order", []string{"a/1", "a/2", "a/3"}, nil, []string{"a/1", "a/2", "a/3"}},
		{"a flood does not starve the other writer",
			[]string{"a/1", "a/2", "a/3", "a/4", "a/5", "b/1", "b/2"}, nil,
			[]string{"a/1", "b/1", "a/2", "b/2", "a/3", "a/4", "a/5"}},
		{"running jobs count: the busy tenant waits",
			[]string{"a/1", "a/2", "b/1", "b/2", "b/3"}, []string{"jobs/a/0.json", "jobs/a/9.json"},
			[]string{"b/1", "b/2", "a/1", "b/3", "a/2"}},
		{"specs at the top level are a tenant of their own",
			[]string{"x", "y", "a/1"}, nil,
			[]string{"x", "a/1", "y"}},
		{"the dispatcher's sweeps share too",
			[]string{"a/1", "a/2"}, []string{"sweeps/jobs/2026-03-02/s1.json"},
			[]string{"a/1", "a/2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := keysOf(fairOrder(entries(tt.pending...), tt.active, nil))
			if !slices.Equal(got, tt.want) {
				t.Errorf("fairOrder = %v, want %v", got, tt.want)
			}
		})
	}
}

// With one slot, the tenant served last waits: a cap of 1 alternates
// between writers across passes instead of serving the oldest flood.
func TestFairOrderRemembersService(t *testing.T) {
	pending := entries("a/2", "a/3", "b/1", "b/2")
	got := keysOf(fairOrder(pending, nil, map[string]uint64{"a": 7}))
	if want := []string{"b/1", "a/2", "b/2", "a/3"}; !slices.Equal(got, want) {
		t.Errorf("fairOrder = %v, want %v", got, want)
	}
}
