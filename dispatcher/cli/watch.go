package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"guestkit.io/batch/internal/metrics"
	"guestkit.io/batch/internal/notify"
	"guestkit.io/batch/internal/redact"
)

// WatchCmd dispatches specs as they arrive, until stopped.
type WatchCmd struct {
	ExecutorFlags
	MetricsAddr   string        `name:"metrics-addr" help:"Address of /metrics, /healthz and /readyz (empty: none)." default:":8080" env:"GUESTKIT_METRICS_ADDR"`
	NotifyToken   string        `name:"notify-token" help:"Bearer token that bucket notifications posted to /minio/events must carry (MinIO's notify_webhook auth_token); empty: none." env:"GUESTKIT_NOTIFY_TOKEN"`
	LeaderElect   bool          `name:"leader-elect" help:"kubernetes: elect one active replica through a Lease." default:"true" negatable:"" env:"GUESTKIT_LEADER_ELECT"`
	LeaseName     string        `name:"lease-name" help:"kubernetes: the Lease's name (in --namespace)." default:"guestkit-dispatcher" env:"GUESTKIT_LEASE_NAME"`
	LeaseDuration time.Duration `name:"lease-duration" help:"kubernetes: how long a leader's Lease lasts without renewal." default:"15s" env:"GUESTKIT_LEASE_DURATION"`
	RenewDeadline time.Duration `name:"renew-deadline" help:"kubernetes: how long the leader keeps trying to renew." default:"10s" env:"GUESTKIT_RENEW_DEADLINE"`
	RetryPeriod   time.Duration `name:"retry-period" help:"kubernetes: how often candidates try to acquire the Lease." default:"2s" env:"GUESTKIT_RETRY_PERIOD"`
	Identity      string        `help:"kubernetes: this replica's identity in the Lease (default: the pod name, else the host name)." env:"POD_NAME"`
}

// Run dispatches until ctx ends. With the kubernetes executor and
// --leader-elect, only the Lease holder dispatches; a replica that loses
// the Lease exits, and its Deployment restarts it as a candidate.
func (c *WatchCmd) Run(ctx context.Context, deps Deps) error {
	log := deps.Log.WithField("command", "watch")
	en, err := newEngine(ctx, deps.Globals, &c.ExecutorFlags, deps, log)
	if err != nil {
		return err
	}
	leading := c.Executor != "kubernetes" || !c.LeaderElect
	var isLeader atomicBool
	isLeader.set(leading)
	mux := http.NewServeMux()
	mux.Handle("/", en.metrics.Handler(func() error {
		if !isLeader.get() {
			return nil // a standby is ready to take over
		}
		return en.ready()
	}))
	// Bucket notifications only make the next pass come sooner. A Service
	// may deliver them to a standby, which passes them on to the leader's
	// pod; if that fails, the leader's polling still finds the spec.
	var leader atomic.Value // identity of the current leader
	mux.Handle(notify.Path, notify.Webhook(c.NotifyToken, "", func(key string) {
		log.WithField("key", key).Debug("bucket notification")
		if isLeader.get() {
			en.trigger.Poke()
			return
		}
		if id, _ := leader.Load().(string); id != "" && en.kube != nil {
			go c.forward(context.WithoutCancel(ctx), en, id, key, log)
		}
	}))
	addr, serveErr, err := metrics.Serve(ctx, c.MetricsAddr, mux)
	if err != nil {
		return fmt.Errorf("--metrics-addr %s: %w", c.MetricsAddr, err)
	}
	if addr != nil {
		log.WithField("addr", addr.String()).Info("serving /metrics, /healthz, /readyz and " + notify.Path)
	}
	run := func(ctx context.Context) error {
		isLeader.set(true)
		if en.start != nil {
			if err := en.start(ctx); err != nil {
				return err
			}
		}
		log.WithFields(logrus.Fields{"bucket": redact.URL(deps.Globals.Bucket), "executor": c.Executor, "interval": c.Interval.String()}).Info("dispatching")
		return en.controller.Run(ctx, en.trigger)
	}
	errc := make(chan error, 1)
	go func() {
		if leading {
			errc <- run(ctx)
			return
		}
		errc <- c.elect(ctx, en, log, run, func(id string) { leader.Store(id) })
	}()
	select {
	case err = <-errc:
	case err = <-serveErr:
		if err != nil {
			err = fmt.Errorf("metrics server: %w", err)
		}
	}
	if en.wait != nil {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = en.wait(wctx)
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		log.Info("stopped")
		return nil
	}
	return err
}

// elect runs run while this replica holds the Lease.
func (c *WatchCmd) elect(ctx context.Context, en *engine, log *logrus.Entry, run func(context.Context) error, newLeader func(string)) error {
	id := c.Identity
	if id == "" {
		id, _ = os.Hostname()
	}
	lock, err := resourcelock.NewFromKubeconfig(resourcelock.LeasesResourceLock, c.Namespace, c.LeaseName,
		resourcelock.ResourceLockConfig{Identity: id}, en.kcfg, c.RenewDeadline)
	if err != nil {
		return fmt.Errorf("lease %s/%s: %w", c.Namespace, c.LeaseName, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runErr error
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   c.LeaseDuration,
		RenewDeadline:   c.RenewDeadline,
		RetryPeriod:     c.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            c.LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				log.WithField("identity", id).Info("leading")
				runErr = run(ctx)
				cancel()
			},
			OnStoppedLeading: func() {
				log.WithField("identity", id).Info("not leading")
			},
			OnNewLeader: func(leader string) {
				newLeader(leader)
				if leader != id {
					log.WithField("leader", leader).Info("standing by")
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	log.WithFields(logrus.Fields{"lease": c.Namespace + "/" + c.LeaseName, "identity": id}).Info("waiting for the lease")
	le.Run(lctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return errors.New("lost the lease; exiting so that a fresh process stands again")
}

// forward posts a notification to the leader's pod (the identity is the
// pod name; its metrics port is this replica's).
func (c *WatchCmd) forward(ctx context.Context, en *engine, leader, key string, log *logrus.Entry) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	log = log.WithFields(logrus.Fields{"leader": leader, "key": key})
	pod, err := en.kube.CoreV1().Pods(c.Namespace).Get(ctx, leader, metav1.GetOptions{})
	if err != nil || pod.Status.PodIP == "" {
		log.WithError(err).Debug("cannot pass the notification on to the leader; its polling will find the spec")
		return
	}
	_, port, err := net.SplitHostPort(c.MetricsAddr)
	if err != nil {
		return
	}
	body, _ := json.Marshal(map[string]any{"Records": []any{map[string]any{"s3": map[string]any{"object": map[string]string{"key": url.QueryEscape(key)}}}}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+net.JoinHostPort(pod.Status.PodIP, port)+notify.Path, bytes.NewReader(body))
	if err != nil {
		return
	}
	if c.NotifyToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.NotifyToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.WithError(err).Debug("cannot pass the notification on to the leader; its polling will find the spec")
		return
	}
	resp.Body.Close()
}
