// Command kstatus-verdicts prints what kstatus and Flux make of DRControl objects, computed by their
// own code: sigs.k8s.io/cli-utils kstatus Compute (kpt, Config Sync, cli-utils apply --wait),
// Flux's fork of it (kustomize-controller's health check without expressions), and Flux's CEL
// status evaluator over the healthCheckExprs of a Kustomization (kustomize-controller's health
// check with expressions, fluxcd/pkg/runtime/cel).
//
// Input on stdin: {"healthCheckExprs": [CustomHealthCheck, ...], "objects": {"name": object}}.
// Output on stdout: {"name": {"kstatus": Verdict, "fluxKstatus": Verdict, "fluxCEL": Verdict}}.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8sjson "k8s.io/apimachinery/pkg/util/json"
	clistatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type input struct {
	HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
	Objects          map[string]map[string]any     `json:"objects"`
}

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus-verdicts:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var req input
	// apimachinery's decoder keeps integers as int64, as objects read from the API server are.
	if err := k8sjson.Unmarshal(raw, &req); err != nil {
		return err
	}
	// kustomize-controller builds its reader this way; it rejects bad or duplicate expressions.
	if _, err := cel.NewStatusReader(req.HealthCheckExprs); err != nil {
		return err
	}
	evaluators := map[schema.GroupKind]*cel.StatusEvaluator{}
	for i := range req.HealthCheckExprs {
		hc := req.HealthCheckExprs[i]
		e, err := cel.NewStatusEvaluator(&hc.HealthCheckExpressions)
		if err != nil {
			return err
		}
		evaluators[schema.FromAPIVersionAndKind(hc.APIVersion, hc.Kind).GroupKind()] = e
	}
	result := map[string]map[string]verdict{}
	for name, obj := range req.Objects {
		u := &unstructured.Unstructured{Object: obj}
		v := map[string]verdict{}
		if r, err := clistatus.Compute(u); err != nil {
			v["kstatus"] = verdict{Error: err.Error()}
		} else {
			v["kstatus"] = verdict{Status: r.Status.String(), Message: r.Message}
		}
		if r, err := fluxstatus.Compute(u); err != nil {
			v["fluxKstatus"] = verdict{Error: err.Error()}
		} else {
			v["fluxKstatus"] = verdict{Status: r.Status.String(), Message: r.Message}
		}
		if e, ok := evaluators[u.GroupVersionKind().GroupKind()]; ok {
			if r, err := e.Evaluate(context.Background(), u); err != nil {
				v["fluxCEL"] = verdict{Error: err.Error()}
			} else {
				v["fluxCEL"] = verdict{Status: r.Status.String(), Message: r.Message}
			}
		}
		result[name] = v
	}
	return json.NewEncoder(out).Encode(result)
}
