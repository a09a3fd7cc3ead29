package main

import (
	"fmt"

	"github.com/datasense/changesync/pkg/apply"
	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/validate"
)

// applySpecs returns the applier's mappings with the compiled column transforms. The
// error names each invalid transform by its field, such as tables[0].transform.zip.
func (a *app) applySpecs() ([]apply.TableSpec, error) {
	transforms, err := compileTransforms(a)
	if err != nil {
		return nil, err
	}
	specs := a.tableSpecs()
	for i := range specs {
		if t, ok := transforms[specs[i].Source]; ok {
			specs[i].Transform = t
		}
	}
	return specs, nil
}

// compileTransforms compiles and type-checks the column transforms of every table with
// the CEL environment and the cost limit of the rules.
func compileTransforms(a *app) (map[change.TableName]*validate.TableTransforms, error) {
	transforms, err := validate.NewTransforms(a.cfg.Tables, uint64(max(a.cfg.RuleCostLimit, 0)))
	if err != nil {
		return nil, fmt.Errorf("compile transforms: %w", err)
	}
	return transforms, nil
}
