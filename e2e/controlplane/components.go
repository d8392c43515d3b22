package main

import (
	"os"

	_ "k8s.io/client-go/plugin/pkg/client/auth" // as upstream kubectl: client auth plugins
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	kcm "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

func init() {
	commands["kube-apiserver"] = func(args []string) int {
		c := apiserver.NewAPIServerCommand()
		c.SetArgs(args)
		return cli.Run(c)
	}
	commands["kube-controller-manager"] = func(args []string) int {
		c := kcm.NewControllerManagerCommand()
		c.SetArgs(args)
		return cli.Run(c)
	}
	commands["kube-scheduler"] = func(args []string) int {
		c := scheduler.NewSchedulerCommand()
		c.SetArgs(args)
		return cli.Run(c)
	}
	commands["kubectl"] = runKubectl
}

// runKubectl is upstream cmd/kubectl/kubectl.go. kubectl reads os.Args itself (plugin lookup, verbosity), so
// os.Args is rewritten to look as if the binary had been invoked as "kubectl".
func runKubectl(args []string) int {
	os.Args = append([]string{"kubectl"}, args...)
	logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) //nolint:errcheck
	if err := cli.RunNoErrOutput(kubectlcmd.NewDefaultKubectlCommand()); err != nil {
		kubectlutil.CheckErr(err) // prints the error and exits non-zero
		return 1
	}
	return 0
}
