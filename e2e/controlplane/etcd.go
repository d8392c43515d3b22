package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	etcdversion "go.etcd.io/etcd/api/v3/version"
	"go.etcd.io/etcd/server/v3/embed"
)

func init() { commands["etcd"] = runEtcd }

// runEtcd starts an embedded etcd from a standard etcd YAML config file (keys are etcd's flag names), so the
// same file also works with a stand-alone etcd binary (`etcd --config-file FILE`).
func runEtcd(args []string) int {
	fs := flag.NewFlagSet("etcd", flag.ContinueOnError)
	path := fs.String("config-file", "", "etcd YAML config file")
	version := fs.Bool("version", false, "print the etcd version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Printf("etcd (embedded) server version %s\n", etcdversion.Version)
		return 0
	}
	if *path == "" {
		fmt.Fprintln(os.Stderr, "usage: etcd --config-file FILE")
		return 2
	}
	cfg, err := embed.ConfigFromFile(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: reading %s: %v\n", *path, err)
		return 1
	}
	// etcdmain (the etcd command) fills this default in after reading the file; embed does not, and with
	// zero every single request is logged as "expensive".
	if cfg.WarningUnaryRequestDuration == 0 {
		cfg.WarningUnaryRequestDuration = embed.DefaultWarningUnaryRequestDuration
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcd: start: %v\n", err)
		return 1
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		fmt.Fprintln(os.Stderr, "etcd: not ready after 60s")
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-e.Err():
		fmt.Fprintf(os.Stderr, "etcd: %v\n", err)
		return 1
	case <-sig:
		return 0
	}
}
