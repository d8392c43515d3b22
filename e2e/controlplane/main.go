// Command k8s-local is a multi-call binary holding the Kubernetes control plane used by vk-eci's
// end-to-end tests: etcd (embedded), kube-apiserver, kube-controller-manager, kube-scheduler and kubectl.
//
// It dispatches on the name it was invoked as (symlinks named after a component) or on its first argument:
//
//	k8s-local kube-apiserver --secure-port=6443 ...
//	kube-apiserver --secure-port=6443 ...   (symlink to k8s-local)
//
// Each component runs in its own process: the components share global state (flags, logging, feature
// gates, metrics registries) and are only safe together in one binary, not in one process.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	_ "time/tzdata" // as upstream kube-apiserver: CronJob time zones work without a system tz database

	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
)

// commands maps a component name to its entry point; each component file registers itself in init().
var commands = map[string]func(args []string) int{}

func main() {
	name, args := filepath.Base(os.Args[0]), os.Args[1:]
	if _, ok := commands[name]; !ok {
		if len(args) == 0 {
			usage()
			os.Exit(2)
		}
		name, args = args[0], args[1:]
	}
	run, ok := commands[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "k8s-local: unknown component %q\n", name)
		usage()
		os.Exit(2)
	}
	os.Exit(run(args))
}

func usage() {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: k8s-local %v [flags]\n", names)
}
