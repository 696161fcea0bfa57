package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/intake"
	"guestkit.io/batch/internal/kubejob"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/store"
)

// StatusCmd shows specs, their Jobs and their results.
type StatusCmd struct {
	Output     string `short:"o" help:"table or json." enum:"table,json" default:"table" env:"GUESTKIT_STATUS_OUTPUT"`
	Kubernetes bool   `help:"Also show each spec's Job (needs a kubeconfig)." env:"GUESTKIT_STATUS_KUBERNETES"`
	Kubeconfig string `help:"kubeconfig file (default: in-cluster, else ~/.kube/config)." env:"KUBECONFIG"`
	Namespace  string `help:"Namespace of the Jobs." default:"guestkit" env:"GUESTKIT_NAMESPACE"`
	Instance   string `help:"app.kubernetes.io/instance of the Jobs." default:"guestkit" env:"GUESTKIT_INSTANCE"`
}

// StatusRow is one spec.
type StatusRow struct {
	Spec   string `json:"spec"`
	JobID  string `json:"job_id,omitempty"`
	State  string `json:"state"` // pending, rejected, done, alias, unreadable
	Job    string `json:"job,omitempty"`
	JobSt  string `json:"job_status,omitempty"`
	Result string `json:"result,omitempty"`
	Status string `json:"status,omitempty"`
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Run prints one row per spec object.
func (c *StatusCmd) Run(ctx context.Context, deps Deps) error {
	st, err := store.Open(ctx, deps.Globals.Bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", redact.URL(deps.Globals.Bucket), err)
	}
	snap, err := intake.NewScanner(st, 0, nil).Scan(ctx)
	if err != nil {
		return err
	}
	jobs := map[string]*batchv1.Job{}
	if c.Kubernetes {
		if jobs, err = c.jobs(ctx); err != nil {
			return err
		}
	}
	var rows []StatusRow
	add := func(state string, list []*intake.Entry) {
		for _, e := range list {
			r := StatusRow{Spec: e.Key, JobID: e.JobID, State: state, Result: e.ResultKey}
			if e.Err != nil {
				r.Reason = oneLine(e.Err.Error(), 200)
			}
			if e.Job != nil {
				if j := jobs[kubejob.JobName(e.Job)]; j != nil {
					r.Job, r.JobSt = j.Name, jobState(j)
				}
			}
			rows = append(rows, r)
		}
	}
	add("pending", snap.Pending)
	add("rejected", snap.Rejected)
	add("alias", snap.Aliases)
	add("done", snap.Done)
	for k, err := range snap.Errors {
		rows = append(rows, StatusRow{Spec: k, State: "unreadable", Reason: oneLine(err.Error(), 200)})
	}
	fillResults(ctx, st, rows)
	slices.SortFunc(rows, func(a, b StatusRow) int { return strings.Compare(a.Spec, b.Spec) })
	if c.Output == "json" {
		enc := json.NewEncoder(deps.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(deps.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SPEC\tJOB ID\tSTATE\tJOB\tRESULT\tCODE")
	for _, r := range rows {
		job := r.Job
		if job != "" {
			job += " (" + r.JobSt + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Spec, r.JobID, r.State, dash(job), dash(r.Status), dash(r.Code))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// fillResults reads the status of the rows whose result exists.
func fillResults(ctx context.Context, st store.Store, rows []StatusRow) {
	var keys []string
	for _, r := range rows {
		if r.State == "done" {
			keys = append(keys, r.Result)
		}
	}
	results, errs := controller.ReadResults(ctx, st, keys)
	for i := range rows {
		if rows[i].State != "done" {
			continue
		}
		r := results[rows[i].Result]
		if r == nil {
			rows[i].Status, rows[i].Reason = "unreadable", oneLine(errs[rows[i].Result].Error(), 200)
			continue
		}
		rows[i].Status = string(r.Status)
		if r.Error != nil {
			rows[i].Code = string(r.Error.Code)
		}
	}
}

func (c *StatusCmd) jobs(ctx context.Context) (map[string]*batchv1.Job, error) {
	cfg, err := kubeConfig(c.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	sel := labels.SelectorFromSet(labels.Set{kubejob.LabelManagedBy: kubejob.LabelManagedByValue, kubejob.LabelInstance: c.Instance})
	out := map[string]*batchv1.Job{}
	opts := metav1.ListOptions{LabelSelector: sel.String(), Limit: 500}
	for {
		list, err := cs.BatchV1().Jobs(c.Namespace).List(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("list jobs in %s: %w", c.Namespace, err)
		}
		for i := range list.Items {
			out[list.Items[i].Name] = &list.Items[i]
		}
		if list.Continue == "" {
			return out, nil
		}
		opts.Continue = list.Continue
	}
}

func jobState(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return "complete"
		case batchv1.JobFailed:
			return "failed: " + c.Reason
		}
	}
	if j.Status.Active > 0 {
		return "running"
	}
	return "pending"
}
