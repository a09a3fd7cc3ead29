// Package migrations embeds the SQL migrations of the changesync metadata schema. The
// files use unqualified names; pkg/store runs them with search_path set to the metadata
// schema.
package migrations

import "embed"

// FS holds the golang-migrate migration files, named NNNNNN_name.up.sql and .down.sql.
//
//go:embed *.sql
var FS embed.FS
