// Command kube-apiserver is the lab's KMS v2 control plane: a kube-apiserver-compatible server built
// on k8s.io/apiserver (the library kube-apiserver 1.36 itself runs on) that serves the legacy core
// group's namespaces, secrets and configmaps through the generic registry and etcd storage. So
// encryption at rest, KMS v2, --encryption-provider-config-automatic-reload, /livez and /readyz with
// their kms-providers checks and --feature-gates run the same library code as in kube-apiserver.
//
// It takes a kubeadm kube-apiserver manifest's flags: those k8s.io/apiserver implements act for
// real; kube-apiserver-only ones come from an explicit accept-and-ignore list (ignoredFlags), so a
// misspelled flag still fails start-up as it would in kube-apiserver.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	genericapiserver "k8s.io/apiserver/pkg/server"
)

func main() {
	ctx := genericapiserver.SetupSignalContext()
	options := newServerOptions()
	flags := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	options.addFlags(flags)
	if err := flags.Parse(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	// Feature gates and emulated version take their flag values before anything reads them.
	if err := options.serverRun.ComponentGlobalsRegistry.Set(); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	if err := options.run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}
