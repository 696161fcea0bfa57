package intake

import (
	"slices"
	"testing"
	"time"

	"guestkit.io/batch/internal/spec/spectest"

	"guestkit.io/batch/internal/spec"
)

func TestOrder(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := func(id, key string, seen time.Time, opts ...func(*spec.Job)) Pending {
		j := spectest.New(id, "s3://vm-images/k", opts...)
		return Pending{Job: j, Key: key, Seen: seen, Priority: j.Priority()}
	}
	tests := []struct {
		name  string
		items []Pending
		want  []string // keys in order
	}{
		{
			name: "priority first, 10 is most urgent, absent is 5",
			items: []Pending{
				p("low", "low", t0, spectest.WithPriority(0)),
				p("default", "default", t0),
				p("urgent", "urgent", t0, spectest.WithPriority(10)),
				p("six", "six", t0, spectest.WithPriority(6)),
				p("four", "four", t0, spectest.WithPriority(4)),
			},
			want: []string{"urgent", "six", "default", "four", "low"},
		},
		{
			name: "then oldest first: the object's time, or a later created_at",
			items: []Pending{
				p("c", "new", t0.Add(time.Hour)),
				p("b", "created-late-seen-early", t0.Add(-time.Hour), spectest.WithCreated(t0.Add(2*time.Hour))),
				p("a", "mid", t0),
			},
			want: []string{"mid", "new", "created-late-seen-early"},
		},
		{
			name: "a created_at in the far past buys no place",
			items: []Pending{
				p("b", "honest", t0),
				p("a", "claims-1970", t0.Add(time.Minute), spectest.WithCreated(time.Unix(0, 0))),
			},
			want: []string{"honest", "claims-1970"},
		},
		{
			name: "unknown age goes last within its priority",
			items: []Pending{
				p("a", "unknown", time.Time{}),
				p("b", "known", t0.Add(100*time.Hour)),
				p("c", "unknown-urgent", time.Time{}, spectest.WithPriority(9)),
			},
			want: []string{"unknown-urgent", "known", "unknown"},
		},
		{
			name: "same time: job_id, then key",
			items: []Pending{
				p("b", "k1", t0),
				p("a", "k9", t0),
				p("a", "k2", t0),
				// Same instant in another zone.
				p("0", "k0", t0.In(time.FixedZone("X", 3600))),
			},
			want: []string{"k0", "k2", "k9", "k1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every input order gives the same output.
			for _, items := range permutations(tt.items) {
				Order(items)
				var got []string
				for _, it := range items {
					got = append(got, it.Key)
				}
				if !slices.Equal(got, tt.want) {
					t.Fatalf("Order = %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestOrderStable(t *testing.T) {
	// Full ties keep their input order.
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a := Pending{Job: spectest.New("same", "s3://vm-images/a"), Key: "same", Seen: t0}
	b := Pending{Job: spectest.New("same", "s3://vm-images/b"), Key: "same", Seen: t0}
	items := []Pending{a, b}
	Order(items)
	if items[0].Job != a.Job || items[1].Job != b.Job {
		t.Errorf("Order is not stable")
	}
}

func TestPendingCreatedAt(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	seen := t0.Add(time.Hour)
	if got := (Pending{Job: spectest.New("a", "s3://vm-images/k"), Seen: seen}).CreatedAt(); !got.Equal(seen) {
		t.Errorf("CreatedAt = %v, want the object's time", got)
	}
	if got := (Pending{Job: spectest.New("a", "s3://vm-images/k", spectest.WithCreated(t0)), Seen: seen}).CreatedAt(); !got.Equal(seen) {
		t.Errorf("CreatedAt = %v, want the object's time: created_at is earlier", got)
	}
	late := seen.Add(time.Hour)
	if got := (Pending{Job: spectest.New("a", "s3://vm-images/k", spectest.WithCreated(late)), Seen: seen}).CreatedAt(); !got.Equal(late) {
		t.Errorf("CreatedAt = %v, want the later created_at", got)
	}
	if got := (Pending{Job: spectest.New("a", "s3://vm-images/k", spectest.WithCreated(t0))}).CreatedAt(); !got.Equal(t0) {
		t.Errorf("CreatedAt = %v, want created_at when the bucket gives no time", got)
	}
}

// permutations returns every ordering of items (copies).
func permutations(items []Pending) [][]Pending {
	if len(items) <= 1 {
		return [][]Pending{slices.Clone(items)}
	}
	var out [][]Pending
	for i := range items {
		rest := slices.Concat(items[:i], items[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]Pending{items[i]}, p...))
		}
	}
	return out
}
