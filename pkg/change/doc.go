// Package change holds the domain types that every stage of changesync shares: a source
// transaction (Tx) with its row events (Event), the relation that describes their
// columns, the tuple values as PostgreSQL sent them, and the decision of the validation
// step. It imports nothing else of the project.
package change
