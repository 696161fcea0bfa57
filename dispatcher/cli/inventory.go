package cli

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/sirupsen/logrus"

	"guestkit.io/batch/internal/controller"
	"guestkit.io/batch/internal/inventory"
	"guestkit.io/batch/internal/redact"
	"guestkit.io/batch/internal/store"
	"guestkit.io/batch/internal/sweep"
)

// InventoryCmd answers questions about the fleet from a sweep's results.
type InventoryCmd struct {
	Package    string `help:"Which images have this package (exact name), with root, version and arch." env:"GUESTKIT_INVENTORY_PACKAGE"`
	Version    string `help:"With --package: only versions in this range, conditions that must all hold (>=3.0.0,<3.0.15; =, !=, <, <=, >, >=), compared as each image's package manager (deb, rpm, apk) compares versions." env:"GUESTKIT_INVENTORY_VERSION"`
	OS         bool   `name:"os" help:"The OS distribution of the fleet: images per distro and version." env:"GUESTKIT_INVENTORY_OS"`
	FailedRule string `name:"failed-rule" help:"Which images failed this rule (id, e.g. sshd_disable_root_login), with severity and root." env:"GUESTKIT_INVENTORY_FAILED_RULE"`
	Date       string `help:"Answer from this date's sweep, YYYY-MM-DD (default: the latest sweep report)." env:"GUESTKIT_INVENTORY_DATE"`
	Prefix     string `help:"Only images whose key starts with this prefix." env:"GUESTKIT_INVENTORY_PREFIX"`
	Output     string `short:"o" help:"table, json or csv." enum:"table,json,csv" default:"table" env:"GUESTKIT_INVENTORY_OUTPUT"`
	Parallel   int    `help:"Results read at once (each is up to 64 MiB)." default:"8" env:"GUESTKIT_INVENTORY_PARALLEL"`
}

// Run reads the sweep report, reads the results of its images that have
// data, and prints the answer.
func (c *InventoryCmd) Run(ctx context.Context, deps Deps) error {
	log := deps.Log.WithField("command", "inventory")
	q, err := c.query()
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("inventory: %w", err)}
	}
	st, err := store.Open(ctx, deps.Globals.Bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", redact.URL(deps.Globals.Bucket), err)
	}
	var rep *sweep.Report
	if c.Date != "" {
		rep, err = sweep.Load(ctx, st, c.Date)
	} else {
		rep, err = sweep.Latest(ctx, st)
		if err == nil && rep == nil {
			err = fmt.Errorf("%w in %s: run a sweep first", sweep.ErrNoReport, st.URI(store.SweepsPrefix))
		}
	}
	if err != nil {
		return fmt.Errorf("inventory: %w", err)
	}
	images := inventory.Plan(rep, c.Prefix)
	log.WithFields(logrus.Fields{"sweep": rep.Date, "images": len(images)}).Debug("reading results")
	if err := readImages(ctx, st, images, q, c.Parallel, log); err != nil {
		return err
	}
	a := inventory.Ask(q, rep, images)
	switch c.Output {
	case "json":
		return inventory.WriteJSON(deps.Stdout, a)
	case "csv":
		return inventory.WriteCSV(deps.Stdout, a)
	}
	return inventory.WriteTable(deps.Stdout, a)
}

// query checks the flags: exactly one question.
func (c *InventoryCmd) query() (inventory.Query, error) {
	q := inventory.Query{Prefix: c.Prefix, Package: c.Package, Rule: c.FailedRule}
	n := 0
	if c.Package != "" {
		q.Kind, n = inventory.KindPackage, n+1
	}
	if c.OS {
		q.Kind, n = inventory.KindOS, n+1
	}
	if c.FailedRule != "" {
		q.Kind, n = inventory.KindFailedRule, n+1
	}
	if n != 1 {
		return q, errors.New("ask one question: --package NAME [--version RANGE], --os or --failed-rule RULE")
	}
	if c.Parallel < 1 {
		return q, fmt.Errorf("--parallel %d: want at least 1", c.Parallel)
	}
	var err error
	if q.Versions, err = inventory.ParseRange(c.Version); err != nil {
		return q, err
	}
	return q, q.Check()
}

// readImages reads the results of the images that need one, parallel at
// a time, and keeps of each only what q asks (inventory.Read), so that a
// fleet's results are never all in memory. An unreadable result marks its
// image missing; only a cancelled context stops the reading.
func readImages(ctx context.Context, st store.Store, images []inventory.Image, q inventory.Query, parallel int, log *logrus.Entry) error {
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := range images {
		if !images[i].NeedsRead() {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return fmt.Errorf("inventory: read results: %w", ctx.Err())
		}
		wg.Add(1)
		go func(img *inventory.Image) {
			defer func() { <-sem; wg.Done() }()
			// ReadResult bounds the object at result.MaxSize.
			res, err := controller.ReadResult(ctx, st, img.ResultKey)
			if err != nil {
				log.WithError(err).WithFields(logrus.Fields{"image": img.Key, "result": img.ResultKey}).Warn("no readable result for an image")
				img.SetReadError(err)
				return
			}
			inventory.Read(img, res, q)
		}(&images[i])
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("inventory: read results: %w", err)
	}
	return nil
}
