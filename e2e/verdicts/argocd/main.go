// Command argocd-verdicts prints Argo CD's health of DRControl objects, computed by Argo CD's own
// code the way its application controller does (controller/health.go): resource overrides read
// from argocd-cm by the settings manager, on a real API server, and gitops-engine's
// GetResourceHealth running the health Lua through Argo CD's Lua VM.
//
// Flags: --kubeconfig and --namespace (where argocd-cm is). Input on stdin: {"name": object}.
// Output on stdout: {"name": {"status": ..., "message": ...}}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
	"github.com/argoproj/gitops-engine/pkg/health"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sjson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster holding argocd-cm")
	namespace := flag.String("namespace", "argocd", "namespace of argocd-cm")
	flag.Parse()
	if err := run(*kubeconfig, *namespace, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "argocd-verdicts:", err)
		os.Exit(1)
	}
}

func run(kubeconfig, namespace string, in io.Reader, out io.Writer) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	overrides, err := settings.NewSettingsManager(context.Background(), clientset, namespace).GetResourceOverrides()
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var objects map[string]map[string]any
	if err := k8sjson.Unmarshal(raw, &objects); err != nil {
		return err
	}
	result := map[string]verdict{}
	for name, obj := range objects {
		hs, err := health.GetResourceHealth(&unstructured.Unstructured{Object: obj}, lua.ResourceHealthOverrides(overrides))
		switch {
		case err != nil:
			result[name] = verdict{Error: err.Error()}
		case hs == nil:
			result[name] = verdict{Error: "no health check applies to this kind"}
		default:
			result[name] = verdict{Status: string(hs.Status), Message: hs.Message}
		}
	}
	return json.NewEncoder(out).Encode(result)
}
