// Command kstatus prints what Flux (and kubectl wait, and every kstatus-based tool) concludes
// about DatabaseMigration objects: the library's own status.Compute, not a re-implementation.
//
// Usage: kstatus FILE.json [FILE.json ...]
// Each file holds one object as `kubectl get -o json` prints it (apiVersion, kind, metadata with
// generation, status). One line is printed per file: STATUS<TAB>FILE<TAB>MESSAGE, where STATUS
// is Current, InProgress, Failed, Terminating, NotFound or Unknown.
package main

import (
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func compute(path string) (*status.Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// UnmarshalJSON keeps integers as int64, as kstatus's generation check expects.
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("%s is not a Kubernetes object in JSON: %w", path, err)
	}
	return status.Compute(obj)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kstatus FILE.json [FILE.json ...]")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		result, err := compute(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s\t%s\t%s\n", result.Status, path, result.Message)
	}
	if failed {
		os.Exit(2)
	}
}
